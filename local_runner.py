"""Runs the image classification pipeline locally with TFX's LocalDagRunner.

    python local_runner.py                       # built-in demo data, demo preset
    python local_runner.py --data-dir PATH ...   # your images, full preset
    python local_runner.py --help                # every flag

Beam runs the data components on its direct runner (``--beam-workers``), or on
the runner ``--beam-args`` names; ML Metadata lives in SQLite under
the output dir, ``<output-dir>/summary.json`` records what happened and
``<output-dir>/run_report.md`` shows it (curves, confusion matrix, per-class metrics).
"""

import dataclasses
import os
import sys
import warnings
from typing import List, Optional

from absl import logging

from pipeline import config as config_lib


# TFX 1.16 needs Python 3.10; Google's client libraries warn about it once per module.
warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)


def main(argv: Optional[List[str]] = None) -> int:
    config = config_lib.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    # Deferred: TensorFlow and TFX take seconds to import, --help should not.
    from tfx import v1 as tfx

    from components.trainer.weights import WeightsUnavailableError, resolve_weights
    from pipeline import demo_data, run_report, run_summary
    from pipeline.pipeline import create_pipeline

    try:
        config = dataclasses.replace(config, output_dir=os.path.abspath(config.output_dir))
        if config.data_dir is None:
            data_dir = demo_data.ensure_demo_dataset(config.demo_data_dir, config.demo_images_per_class, config.train.seed)
            config = dataclasses.replace(config, data_dir=data_dir)
        else:
            config = dataclasses.replace(config, data_dir=os.path.abspath(config.data_dir))
        # Fail before any component runs when the weights cannot be had.
        resolve_weights(config.train.weights)
        pipeline = create_pipeline(config)
    except (ValueError, WeightsUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    try:
        tfx.orchestration.LocalDagRunner().run(pipeline)
    except Exception as error:  # noqa: BLE001 - any failure still gets its summary.json and report
        summary = run_summary.write_summary(config, failure=error)
        report = run_report.write_report(summary, config.output_dir)
        print(run_summary.describe(summary, config.summary_path) + f"\nReport: {report}", file=sys.stderr)
        return 1
    summary = run_summary.write_summary(config)
    report = run_report.write_report(summary, config.output_dir)
    print(run_summary.describe(summary, config.summary_path) + f"\nReport: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
