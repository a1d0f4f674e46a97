"""The whole pipeline at the sizes users have: each component's seconds, the run's peak
memory and what it leaves on disk, at 2,000 and 20,000 generated images (100,000 with
``--with-100k``), and whether one epoch learns as much as over fully shuffled data.

Each size is a folder of distinct generated JPEGs (80-160 px, 40 classes: 4 shapes in
10 hue bands, ``bench/common.py``), listed class by class as folders are.  The pipeline
runs as a user runs it, ``local_runner.py --data-dir DIR --image-size 32 --epochs 1
--weights none`` (from scratch, TFLite models included), in a process of its own; its
peak memory is the largest total resident memory of it and its children, sampled twice
a second.  Component seconds come from ML Metadata (each execution's start and end).

With ``--shuffled-baseline``, the largest size's one epoch is trained again by the same
``run_fn``, with the same settings, on the same examples written in a fully shuffled
order (a uniform permutation of the whole split) and, with ``--small-buffer``, on the
pipeline's own shards with a shuffle buffer of 1,000 images (as the Trainer had before):
the eval accuracies side by side say whether the order of the records cost anything.

    .venv/bin/python -m bench.bench_scale [--sizes 2000 20000] [--with-100k] [--shuffled-baseline]

Folders and runs go under ``--work`` (default /tmp/bench_scale); results to
bench/results/scale.json.
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

import psutil

from bench.common import generate_classes, write_results

REPO = pathlib.Path(__file__).resolve().parents[1]
CLASSES = 40
RUN_FLAGS = ["--image-size", "32", "--epochs", "1", "--weights", "none"]
# The Trainer's buffer before it was sized from the memory at hand, in images.
OLD_BUFFER = 1000


def _folder_bytes(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _disk_bytes(path: pathlib.Path) -> int:
    """Bytes on disk, each hard-linked file counted once (as ``du`` does)."""
    seen, total = set(), 0
    for file in path.rglob("*"):
        if file.is_file() and not file.is_symlink():
            stat = file.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total


def _run_with_peak_memory(command: list[str], log: pathlib.Path) -> tuple[int, float, int]:
    """Runs ``command``; returns its exit code, seconds and the peak resident memory of it and
    its children together."""
    start = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        watched, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [watched, *watched.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:  # a child ended while being read
                pass
            time.sleep(0.5)
    return process.returncode, time.monotonic() - start, peak


def _component_seconds(metadata: pathlib.Path) -> dict[str, float]:
    """Each component's seconds in the store's latest run (cached ones excluded)."""
    import ml_metadata as mlmd  # pylint: disable=import-outside-toplevel
    from ml_metadata.proto import metadata_store_pb2  # pylint: disable=import-outside-toplevel

    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = str(metadata)
    connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    store = mlmd.MetadataStore(connection)
    run = max(store.get_contexts_by_type("pipeline_run"), key=lambda context: context.id)
    seconds = {}
    for execution in store.get_executions_by_context(run.id):
        if execution.last_known_state != metadata_store_pb2.Execution.COMPLETE:
            continue
        node = next((c.name.split(".", 1)[1] for c in store.get_contexts_by_execution(execution.id)
                     if c.type_id == store.get_context_type("node").id), None)
        if node:
            milliseconds = execution.last_update_time_since_epoch - execution.create_time_since_epoch
            seconds[node] = round(milliseconds / 1000, 1)
    return seconds


def _output_breakdown(output: pathlib.Path) -> dict[str, int]:
    """Bytes under each component's folder, the served models and the rest."""
    parts = {}
    root = output / "pipeline_root"
    for component in sorted(root.iterdir()) if root.is_dir() else []:
        parts[component.name] = _disk_bytes(component)
    parts["serving (beyond the Trainer's files it links)"] = _disk_bytes(output) - sum(parts.values()) - sum(
        _disk_bytes(output / name) for name in ("logs",) if (output / name).exists()) - (
        (output / "metadata.sqlite").stat().st_size if (output / "metadata.sqlite").exists() else 0)
    return parts


def run_size(count: int, work: pathlib.Path) -> dict:
    data = generate_classes(work / f"images_{count}", count, classes=CLASSES)
    output = work / f"run_{count}"
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "local_runner.py", "--data-dir", str(data), "--output-dir", str(output), *RUN_FLAGS]
    print(f"{count} images: {' '.join(command[1:])}", flush=True)
    code, seconds, peak = _run_with_peak_memory(command, work / f"run_{count}.console.txt")
    summary = json.loads((output / "summary.json").read_text()) if (output / "summary.json").exists() else {}
    data_bytes, output_bytes = _folder_bytes(data), _disk_bytes(output)
    result = {
        "exit_code": code, "seconds": round(seconds, 1), "peak_memory_bytes": peak,
        "component_seconds": _component_seconds(output / "metadata.sqlite"),
        "data_bytes": data_bytes, "output_bytes": output_bytes,
        "output_over_data": round(output_bytes / data_bytes, 2),
        "output_breakdown_bytes": _output_breakdown(output),
        "eval_accuracy": (summary.get("metrics") or {}).get("accuracy"),
        "tflite": {kind: {k: v.get(k) for k in ("accuracy", "agreement", "eval_images")}
                   for kind, v in ((summary.get("tflite") or {}).get("models") or {}).items()},
        "tflite_eval_sample": (summary.get("tflite") or {}).get("eval_sample"),
        "tflite_calibration_sample": (summary.get("tflite") or {}).get("calibration_sample"),
    }
    print(json.dumps(result, indent=1), flush=True)
    return result


def _one_epoch(output: pathlib.Path, train_pattern: str, label: str, work: pathlib.Path,
               shuffle_buffer_mb: float = 0.0) -> dict:
    """Trains one epoch with the pipeline's own run_fn and settings on ``train_pattern``; the
    eval accuracy and seconds."""
    script = f"""
import glob, json, sys, yaml
import components
from tfx.components.trainer.fn_args_utils import FnArgs
from components.trainer import run
from components.trainer.params import TrainParams
from tfx.types import artifact_utils
config = yaml.safe_load(open({str(output / 'config.yaml')!r}))
train = config["train"]
train.update(tflite="none", shuffle_buffer_mb={shuffle_buffer_mb})
params = TrainParams.from_custom_config(train)
root = {str(output / 'pipeline_root')!r}
evals = glob.glob(root + "/ImageValidator/validated_examples/*/Split-eval/*")
transform = glob.glob(root + "/Transform/transform_graph/*")[0]
work = {str(work / label)!r}
run.run_fn(FnArgs(train_files=[{train_pattern!r}], eval_files=evals, transform_output=transform,
                  serving_model_dir=work + "/model", model_run_dir=work + "/run",
                  custom_config=params.to_custom_config()))
print(json.dumps(json.load(open(work + "/run/history.json"))["epochs"][-1]))
"""
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True)
    epoch = json.loads(done.stdout.strip().splitlines()[-1])
    return {"eval_accuracy": round(epoch["val_accuracy"], 4), "train_accuracy": round(epoch["accuracy"], 4),
            "seconds": round(time.monotonic() - start, 1)}


def order_baselines(count: int, work: pathlib.Path, small_buffer: bool) -> dict:
    """The pipeline's one epoch beside the same epoch over fully shuffled records (and over its own
    shards with a 1,000-image buffer)."""
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    output = work / f"run_{count}"
    history = json.loads(next((output / "pipeline_root" / "Trainer" / "model_run").glob("*/history.json"))
                         .read_text())
    shards = sorted(glob for glob in (output / "pipeline_root" / "ImageValidator" / "validated_examples")
                    .glob("*/Split-train/*"))
    records = [r.numpy() for r in tf.data.TFRecordDataset([str(s) for s in shards])]
    shuffled = work / "shuffled_train.tfrecord"
    with tf.io.TFRecordWriter(str(shuffled)) as writer:
        for index in np.random.default_rng(0).permutation(len(records)):
            writer.write(records[index])
    del records
    result = {"pipeline": {"eval_accuracy": round(history["epochs"][-1]["val_accuracy"], 4),
                           "train_accuracy": round(history["epochs"][-1]["accuracy"], 4),
                           "input": history.get("input")},
              "fully_shuffled": _one_epoch(output, str(shuffled), "fully_shuffled", work)}
    if small_buffer:
        config = json.loads(json.dumps(__import__("yaml").safe_load((output / "config.yaml").read_text())))
        per_image = config["train"]["image_size"] ** 2 * 3 + 256
        result["pipeline_shards_buffer_1000"] = _one_epoch(
            output, str(shards[0].parent / "*"), "buffer_1000", work, OLD_BUFFER * per_image / 2**20)
    print(json.dumps(result, indent=1), flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--with-100k", action="store_true", help="Also run 100,000 images (hours here).")
    parser.add_argument("--shuffled-baseline", action="store_true",
                        help="Train the largest size's epoch again over fully shuffled records.")
    parser.add_argument("--small-buffer", action="store_true",
                        help="With --shuffled-baseline: and over the pipeline's shards with a 1,000-image buffer.")
    parser.add_argument("--work", default="/tmp/bench_scale", help="Where the folders and runs go.")
    args = parser.parse_args(argv)
    work = pathlib.Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sizes = sorted(set(args.sizes + ([100_000] if args.with_100k else [])))
    runs = {str(count): run_size(count, work) for count in sizes}
    results = {"cpu_count": os.cpu_count(), "memory_bytes": psutil.virtual_memory().total,
               "flags": RUN_FLAGS, "classes": CLASSES, "runs": runs}
    smallest, largest = runs[str(sizes[0])], runs[str(sizes[-1])]
    if len(sizes) > 1:
        scale = sizes[-1] / sizes[0]
        results["largest_over_smallest"] = {
            "images": scale,
            "component_seconds": {name: round(seconds / smallest["component_seconds"][name], 2)
                                  for name, seconds in largest["component_seconds"].items()
                                  if smallest["component_seconds"].get(name)},
            "peak_memory": round(largest["peak_memory_bytes"] / smallest["peak_memory_bytes"], 2),
        }
    if args.shuffled_baseline:
        results["order"] = {"images": sizes[-1], **order_baselines(sizes[-1], work, args.small_buffer)}
    write_results("scale.json", results)


if __name__ == "__main__":
    main()
