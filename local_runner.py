"""Runs the image classification pipeline locally with TFX's LocalDagRunner.

    python local_runner.py                       # built-in demo data, demo preset
    python local_runner.py --data-dir PATH ...   # your images, full preset
    python local_runner.py --print-config > run.yaml; python local_runner.py --config run.yaml
    python local_runner.py --help                # every flag

The console shows one line per component, training progress and a closing
summary; everything TFX, Beam and TensorFlow log goes to
``<output-dir>/logs/run-<time>.log`` (``--verbose``: all of it on the console).
Beam runs the data components on its direct runner (``--beam-workers``), or on
the runner ``--beam-args`` names; ML Metadata lives in SQLite under the output
dir, ``<output-dir>/summary.json`` records what happened,
``<output-dir>/run_report.md`` (and ``run_report.html``, one self-contained file)
shows it and ``<output-dir>/config.yaml`` holds
the effective config.
"""

import dataclasses
import os
import sys
from typing import Optional

from pipeline import config as config_lib
from pipeline import noise
from pipeline.console import RunConsole


def build_arg_parser():
    parser = config_lib.build_arg_parser()
    parser.add_argument("--verbose", action="store_true",
                        help="Show everything TFX, Beam and TensorFlow log on the console, as it comes, instead of "
                             "the short account of the run and a log file under <output-dir>/logs/.")
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_arg_parser()
    config = config_lib.parse_args(argv, parser)
    verbose = parser.parse_args(argv).verbose
    config = dataclasses.replace(config, output_dir=os.path.abspath(config.output_dir))
    # Checked before TensorFlow and TFX load: a mistyped folder is answered at once.
    for flag, folder in (("--data-dir", config.data_dir), ("--predict-dir", config.predict_dir)):
        if folder and "://" not in folder and not os.path.isdir(folder):
            print(f"error: {flag} {folder!r} does not exist or is not a directory.", file=sys.stderr)
            return 2
    noise.silence()
    with RunConsole(config.output_dir, verbose=verbose) as console:
        return _run(config, console)


def _run(config: config_lib.PipelineConfig, console: RunConsole) -> int:
    from absl import logging  # pylint: disable=import-outside-toplevel

    logging.set_verbosity(logging.INFO)
    # Deferred until the console has the output: TensorFlow and TFX take seconds to import,
    # and print their start-up lines as they do.
    from tfx import v1 as tfx  # pylint: disable=import-outside-toplevel

    from components.trainer.weights import WeightsUnavailableError, resolve_weights  # pylint: disable=import-outside-toplevel
    from pipeline import demo_data, run_report, run_summary  # pylint: disable=import-outside-toplevel
    from pipeline.pipeline import create_pipeline  # pylint: disable=import-outside-toplevel

    try:
        if config.data_dir is None:
            data_dir = demo_data.ensure_demo_dataset(
                config.demo_data_dir, config.demo_images_per_class, config.train.seed)
            config = dataclasses.replace(config, data_dir=data_dir)
        else:
            config = dataclasses.replace(config, data_dir=os.path.abspath(config.data_dir))
        # Fail before any component runs when the weights cannot be had.
        resolve_weights(config.train.weights)
        pipeline = create_pipeline(config)
    except (ValueError, WeightsUnavailableError) as error:
        console.error(f"error: {error}")
        return 2
    with open(config.config_path, "w", encoding="utf-8") as f:
        f.write(config_lib.to_yaml(config))
    console.print(f"Data: {config.data_dir}   recipe: {config.train.recipe} (weights: {config.train.weights})   "
                  f"config: {config.config_path}")
    console.figure = lambda component: run_summary.component_figure(config, component)

    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # any failure still gets its summary.json and report
        console.failed(error)
        predictions = run_summary.eval_predictions(config)
        summary = run_summary.write_summary(config, failure=error, eval_predictions=predictions)
        report = run_report.write_report(summary, config, predictions)
        console.error(run_summary.describe(summary, config.summary_path) + f"\nReport: {report}"
                      + f"\nRun time: {console.elapsed()}", style=None)
        return 1
    predictions = run_summary.eval_predictions(config)
    summary = run_summary.write_summary(config, eval_predictions=predictions)
    report = run_report.write_report(summary, config, predictions)
    console.print(run_summary.describe(summary, config.summary_path) + f"\nReport: {report}"
                  + f"\nRun time: {console.elapsed()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
