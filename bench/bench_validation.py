"""Image validation throughput, side by side with single-process Pillow loops.

On the same files in the same run (the hymenoptera set, when present beside the
repository, and a generated set of 224x224 JPEGs), measures files/s of:

  pillow_verify   a single-process loop: Image.open(path).verify() per file
                  (the baseline the issue names; verify() checks structure only)
  pillow_load     a single-process loop: Image.open(path).load() per file (a full decode)
  checks_loop     a single-process loop of the validator's reads and checks
                  (inspect_references, in the executor's batches) on the ingested
                  references: its cost per file without Beam
  validator_*     the ImageValidator executor's Do() on the ingested references
                  (every file read, full TensorFlow decode, header checks,
                  perceptual hashes and copy groups, the clean examples written
                  as shuffled shards, thumbnails and reports),
                  on Beam's direct runner in one thread, in 2 threads and in 2
                  processes; its times include Beam's start-up (seconds for
                  worker processes, which import TensorFlow), so small sets
                  understate its steady rate
  validator_in_memory_no_near_duplicates
                  the same in one thread with near-duplicate detection off:
                  what the perceptual hashes and their grouping cost

Each measurement is repeated; medians are printed as ratios against
pillow_verify and written to bench/results/validation.json.

    .venv/bin/python -m bench.bench_validation [--repeats 3] [--generated 2000 20000] [--processes]
"""

import argparse
import os
import pathlib
import statistics
import sys
import tempfile
import time

import tensorflow as tf
from PIL import Image

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from bench.common import generate_jpegs, write_results
from components import artifacts
from components.image_validator import executor as validator_executor
from components.image_validator.policy import ValidationPolicy
from pipeline.pipeline import beam_args_with_dependencies
from tests.helpers import HYMENOPTERA, run_ingest, run_validator

# With the dependency flag the pipeline adds, as the pipeline runs the validator.
BEAM_RUNNERS = {
    name: beam_args_with_dependencies(args)
    for name, args in {
        "validator_in_memory": ["--direct_running_mode=in_memory", "--direct_num_workers=1"],
        "validator_2_threads": ["--direct_running_mode=multi_threading", "--direct_num_workers=2"],
        "validator_2_processes": ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    }.items()
}


def image_files(root: pathlib.Path):
    return sorted(p for p in root.rglob("*") if p.is_file())


def pillow_loop(paths, full_decode: bool) -> None:
    for path in paths:
        try:
            with Image.open(path) as image:
                image.load() if full_decode else image.verify()
        except Exception:  # a broken file counts as checked
            pass


def read_examples(examples) -> list:
    files = sorted(pathlib.Path(examples.uri).glob("Split-*/*"))
    return [(f.parent.name[len("Split-"):], r.numpy()) for f in files for r in tf.data.TFRecordDataset(str(f), "GZIP")]


def checks_loop(records, data_root: str) -> None:
    policy = ValidationPolicy()
    batch = validator_executor._BATCH  # pylint: disable=protected-access
    for start in range(0, len(records), batch):
        # Split by split, as the executor reads them.
        chunk = records[start:start + batch]
        for split in sorted({s for s, _ in chunk}):
            validator_executor.inspect_references([r for s, r in chunk if s == split], split, policy, None, data_root)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


NO_NEAR_DUPLICATES = "validator_in_memory_no_near_duplicates"


def bench_dataset(name: str, root: pathlib.Path, work: pathlib.Path, repeats: int, runners: dict):
    paths = image_files(root)
    ingested = run_ingest(root, work / f"{name}_ingested", return_artifact=True,
                          beam_args=BEAM_RUNNERS["validator_in_memory"])
    records = read_examples(ingested.examples)
    times = {"pillow_verify": [], "pillow_load": [], "checks_loop": [], NO_NEAR_DUPLICATES: []}
    times.update({key: [] for key in runners})
    no_near = ValidationPolicy(near_duplicates=False)
    for repeat in range(repeats):  # side by side, alternating
        times["pillow_verify"].append(timed(pillow_loop, paths, False))
        times["pillow_load"].append(timed(pillow_loop, paths, True))
        times["checks_loop"].append(timed(checks_loop, records, artifacts.data_root(ingested.examples)))
        for key, args in runners.items():
            times[key].append(timed(run_validator, ingested, work / f"{name}_{key}_{repeat}", None, None, args))
        times[NO_NEAR_DUPLICATES].append(timed(run_validator, ingested, work / f"{name}_no_near_{repeat}",
                                               no_near, None, BEAM_RUNNERS["validator_in_memory"]))
    rates = {key: len(paths) / statistics.median(values) for key, values in times.items()}
    baseline = rates["pillow_verify"]
    return {
        "files": len(paths),
        "near_duplicate_cost": round(rates[NO_NEAR_DUPLICATES] / rates["validator_in_memory"], 3),
        "files_per_second": {k: round(v, 1) for k, v in rates.items()},
        "ratio_to_pillow_verify": {k: round(v / baseline, 3) for k, v in rates.items()},
        "ratio_to_pillow_load": {k: round(v / rates["pillow_load"], 3) for k, v in rates.items()},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generated", type=int, nargs="+", default=[2000, 20000],
                        help="Sizes of the generated 224x224 JPEG sets.")
    parser.add_argument("--processes", action="store_true",
                        help="Also run the validator in 2 threads and in 2 worker processes.")
    args = parser.parse_args(argv)
    runners = BEAM_RUNNERS if args.processes else {"validator_in_memory": BEAM_RUNNERS["validator_in_memory"]}
    results = {"repeats": args.repeats, "cpu_count": os.cpu_count(), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        datasets = {}
        if HYMENOPTERA.is_dir():
            datasets["hymenoptera"] = HYMENOPTERA
        for count in args.generated:
            datasets[f"generated_{count}_224_jpeg"] = generate_jpegs(work / f"generated_{count}", count)
        for name, root in datasets.items():
            result = bench_dataset(name, root, work, args.repeats, runners)
            results["datasets"][name] = result
            print(f"\n{name}: {result['files']} files, median of {args.repeats}; without near-duplicate "
                  f"detection the validator runs x{result['near_duplicate_cost']:.2f} as fast", flush=True)
            for key, rate in result["files_per_second"].items():
                print(f"  {key:24s} {rate:8.1f} files/s   x{result['ratio_to_pillow_verify'][key]:.2f} vs pillow_verify"
                      f"   x{result['ratio_to_pillow_load'][key]:.2f} vs pillow_load")
    write_results("validation.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
