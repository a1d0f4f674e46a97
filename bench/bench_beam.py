"""Ingest plus validation throughput with 1 local Beam worker beside 2, in one run,
on both sides of the line the local runner's default draws (``local_beam_workers``).

On the same files (the hymenoptera set, when present beside the repository,
and a generated set of 224x224 JPEGs), runs the ingest executor and then the
ImageValidator executor, as the pipeline does, with the Beam args the pipeline
gives them for ``--beam-workers 1`` (Beam in the component's own process) and
``--beam-workers 2`` (Beam's multi-processing direct runner, 2 worker
processes).  Times include starting Beam's workers, which each import
TensorFlow.  Medians of the repeats are printed as files/s and as the ratio of
2 workers to 1, with what the default picks for each set on this machine, and
written to bench/results/beam_workers.json.  The default's file line is
MIN_FILES_FOR_WORKERS: the generated sets sit below and above it.

    .venv/bin/python -m bench.bench_beam [--repeats 3] [--generated 2000 20000]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile

from bench.bench_validation import timed
from bench.common import generate_jpegs, write_results
from pipeline.pipeline import MIN_FILES_FOR_WORKERS, beam_pipeline_args, local_beam_workers
from tests.helpers import HYMENOPTERA, run_ingest, run_validator

WORKERS = (1, 2)


def ingest_and_validate(root: pathlib.Path, work: pathlib.Path, beam_args) -> None:
    ingested = run_ingest(root, work / "examples", return_artifact=True, beam_args=beam_args)
    run_validator(ingested, work, beam_args=beam_args)


def bench_dataset(root: pathlib.Path, work: pathlib.Path, repeats: int) -> dict:
    files = sum(1 for path in root.rglob("*") if path.is_file())
    times = {workers: [] for workers in WORKERS}
    for repeat in range(repeats):
        for workers in WORKERS:  # side by side, alternating
            run_dir = work / f"{workers}_workers_{repeat}"
            times[workers].append(timed(ingest_and_validate, root, run_dir, beam_pipeline_args((), workers)))
    rates = {workers: files / statistics.median(values) for workers, values in times.items()}
    default = local_beam_workers(0, files)
    return {
        "files": files,
        "default_workers": default,
        "default_is_faster_choice": rates[min(default, 2)] >= max(rates.values()),
        "seconds": {f"{w}_workers": [round(t, 2) for t in values] for w, values in times.items()},
        "files_per_second": {f"{w}_workers": round(rate, 1) for w, rate in rates.items()},
        "ratio_2_to_1_workers": round(rates[2] / rates[1], 3),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generated", type=int, nargs="+", default=[2000, 2 * MIN_FILES_FOR_WORKERS],
                        help="Sizes of the generated 224x224 JPEG sets.")
    args = parser.parse_args(argv)
    results = {"repeats": args.repeats, "cpu_count": os.cpu_count(), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        datasets = {}
        if HYMENOPTERA.is_dir():
            datasets["hymenoptera"] = HYMENOPTERA
        for count in args.generated:
            datasets[f"generated_{count}_224_jpeg"] = generate_jpegs(work / f"generated_{count}", count)
        for name, root in datasets.items():
            result = bench_dataset(root, work / name, args.repeats)
            results["datasets"][name] = result
            rates = result["files_per_second"]
            print(f"{name}: {result['files']} files, median of {args.repeats}: "
                  f"1 worker {rates['1_workers']:.1f} files/s, 2 workers {rates['2_workers']:.1f} files/s "
                  f"(x{result['ratio_2_to_1_workers']:.2f}); the default picks {result['default_workers']}",
                  flush=True)
    write_results("beam_workers.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
