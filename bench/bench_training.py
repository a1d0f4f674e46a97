"""Training speed: the Trainer as shipped beside a plain tf.keras ResNet50 ``fit``, and beside
what this machine's arithmetic allows.

Two kinds of fresh process, alternating, at each image size (the batch is the same for both):

  trainer   ``run_fn`` itself, from scratch (every layer trains), with the default input
            pipeline (validated examples of generated photos-like JPEGs, decoded, cached,
            shuffled, augmented with the standard preset, class weights) and callbacks;
            images/s over its second epoch's steps, read from its own progress events
  keras     ``tf.keras.applications.ResNet50(weights=None)`` compiled with Adam and
            cross-entropy, ``fit`` on random tensors held in memory; images/s over the
            second epoch's steps, timed by a callback

Both run with the oneDNN CPU kernels the product switches on. With ``--levers``, plain Keras
again with one setting changed at a time (``LEVERS``: XLA, steps per execution, inter-op
threads, the batch, the data format, TensorFlow's own kernels), beside the plain one.

The limit: the best float32 rate TensorFlow reaches on this machine's cores (a 4096 x 4096
``tf.matmul`` and a large 3x3 convolution, each on every core), divided by the FLOPs one
training step costs per image (three times ResNet50's forward pass, as TensorFlow's
profiler counts it at that size).

    .venv/bin/python -m bench.bench_training [--sizes 32 64 224] [--rounds 2] [--batch 32] [--levers]

Results go to bench/results/training.json: per size, images/s per variant (medians over the
rounds, and every round), trainer / keras, each one's share of the limit; a run of some
sizes replaces those sizes' figures and keeps the others'.
"""

import argparse
import json
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads: tf.keras is tf_keras)

VARIANTS = ("trainer", "keras")
CLASSES = 40
TRAIN_STEPS = 16  # steps per epoch, each variant
# With --levers: plain Keras again, one setting changed at a time (what could stand
# between a Keras fit and the machine), in fresh processes beside the plain one.
LEVERS = {
    "xla": "jit_compile=True: the train step compiled by XLA",
    "steps_per_execution_8": "8 steps per call of the train function",
    "one_inter_op_thread": "tf.config.threading.set_inter_op_parallelism_threads(1)",
    "batch_64": "twice the batch",
    "channels_first": "NCHW images and convolutions (keras.backend image_data_format)",
    "eigen_kernels": "TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's own CPU kernels instead of oneDNN's "
                     "(what TensorFlow picks by itself on a CPU it does not recognise)",
}
# With --trainer-xla: the Trainer itself with one setting changed.
TRAINER_LEVERS = {"trainer_xla": "the Trainer with --xla on"}


def _steady_rate(times: list[tuple[int, float]], batch: int) -> float:
    """Images/s between the first and the last (step, time) of an epoch's step ends."""
    (first_step, first_time), (last_step, last_time) = times[0], times[-1]
    return (last_step - first_step) * batch / (last_time - first_time)


def _trainer(size: int, batch: int, data: dict, xla: str = "auto") -> float:
    from tfx.components.trainer.fn_args_utils import FnArgs  # pylint: disable=import-outside-toplevel

    from components import progress  # pylint: disable=import-outside-toplevel
    from components.trainer import run  # pylint: disable=import-outside-toplevel
    from components.trainer.params import FROM_SCRATCH, RECIPES, TrainParams  # pylint: disable=import-outside-toplevel

    params = TrainParams(image_size=size, batch_size=batch, weights="none", recipe=FROM_SCRATCH,
                         **{**RECIPES[FROM_SCRATCH], "finetune_epochs": 2}, tflite="none", xla=xla)
    second_epoch = []

    class Listen(logging.Handler):
        def emit(self, record):
            event = record.progress
            if event["kind"] == "step" and event["epoch"] == 2:
                second_epoch.append((event["step"], time.monotonic()))

    logging.getLogger(progress.LOGGER_NAME).addHandler(Listen())
    work = tempfile.mkdtemp(prefix="bench_training_")
    run.run_fn(FnArgs(train_files=[data["train"]], eval_files=[data["eval"]], transform_output=data["transform"],
                      serving_model_dir=f"{work}/model", model_run_dir=f"{work}/run",
                      custom_config=params.to_custom_config()))
    return _steady_rate(second_epoch, batch)


def _keras(size: int, batch: int, lever: str = "") -> float:
    import numpy as np  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if lever == "one_inter_op_thread":
        tf.config.threading.set_inter_op_parallelism_threads(1)
    if lever == "batch_64":
        batch *= 2
    shape = (3, size, size) if lever == "channels_first" else (size, size, 3)
    if lever == "channels_first":
        tf.keras.backend.set_image_data_format("channels_first")
    model = tf.keras.applications.ResNet50(weights=None, input_shape=shape, classes=CLASSES)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"],
                  jit_compile=lever == "xla", steps_per_execution=8 if lever == "steps_per_execution_8" else 1)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (TRAIN_STEPS * batch, *shape)).astype(np.float32)
    labels = tf.keras.utils.to_categorical(rng.integers(0, CLASSES, TRAIN_STEPS * batch), CLASSES)

    class SecondEpochTimer(tf.keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch, self.times = 0, []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch_number, logs=None):
            if self.epoch == 1:
                self.times.append((batch_number, time.monotonic()))

    timer = SecondEpochTimer()
    model.fit(images, labels, batch_size=batch, epochs=2, callbacks=[timer], verbose=0)
    # With 8 steps per execution the callback hears every 8th step, numbered as the last of them.
    return _steady_rate(timer.times, batch)


def _peak_flops() -> dict[str, float]:
    """The float32 FLOP/s TensorFlow reaches on every core: a large matrix product, and a
    large 3x3 convolution (ResNet50's own kind of work), with the kernels the Trainer uses."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    def rate(fn, args, flops: float) -> float:
        fn(*args).numpy()
        rounds, start = 5, time.perf_counter()
        for _ in range(rounds):
            fn(*args).numpy()
        return flops * rounds / (time.perf_counter() - start)

    n = 4096
    matmul = rate(tf.function(tf.linalg.matmul), (tf.random.uniform((n, n)), tf.random.uniform((n, n))), 2 * n**3)
    batch, side, channels = 32, 28, 256
    images, kernel = tf.random.uniform((batch, side, side, channels)), tf.random.uniform((3, 3, channels, channels))
    conv = rate(tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME")), (images, kernel),
                2 * batch * side * side * channels * channels * 9)
    return {"matmul": matmul, "conv3x3": conv}


def _training_flops_per_image(size: int) -> float:
    """Three forward passes of ResNet50 at ``size``: the forward, and the backward's two."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow.python.framework.convert_to_constants import (  # pylint: disable=import-outside-toplevel
        convert_variables_to_constants_v2,
    )


    model = tf.keras.applications.ResNet50(weights=None, input_shape=(size, size, 3), classes=CLASSES)
    forward = tf.function(lambda x: model(x, training=False)).get_concrete_function(
        tf.TensorSpec([1, size, size, 3], tf.float32))
    graph = convert_variables_to_constants_v2(forward).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    flops = tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops
    return 3.0 * flops


def _child(variant: str, size: int, batch: int, data: dict) -> dict:
    if variant in ("trainer", "trainer_xla"):
        return {"images_per_second": _trainer(size, batch, data, xla="on" if variant == "trainer_xla" else "auto")}
    return {"images_per_second": _keras(size, batch, "" if variant == "keras" else variant)}


def _prepare(work: pathlib.Path) -> dict:
    """Validated examples of generated JPEGs (40 classes), as the pipeline writes them, and their
    label vocabulary."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tfx.types import artifact_utils  # pylint: disable=import-outside-toplevel

    from bench.common import generate_classes  # pylint: disable=import-outside-toplevel
    from tests.helpers import build_transform_output, run_ingest, run_validator  # pylint: disable=import-outside-toplevel

    # Enough for 16 steps of 32 in the train split (4:1 with eval).
    folder = generate_classes(work / "images", 5 * TRAIN_STEPS * 32 // 4 + 40, classes=CLASSES)
    validated, _ = run_validator(run_ingest(folder, work / "ingested", return_artifact=True), work, seed=0)
    patterns = {split: os.path.join(artifact_utils.get_split_uri([validated], split), "*")
                for split in ("train", "eval")}
    labels = [tf.train.Example.FromString(r.numpy()).features.feature["label"].bytes_list.value[0].decode()
              for r in tf.data.TFRecordDataset(tf.io.gfile.glob(patterns["train"]))]
    build_transform_output(labels, str(work / "transform"))
    return {**patterns, "transform": str(work / "transform")}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64, 224], help="Image sides, in pixels.")
    parser.add_argument("--rounds", type=int, default=2, help="Processes of each variant per size, alternating.")
    parser.add_argument("--batch", type=int, default=32, help="Images per step, both variants.")
    parser.add_argument("--levers", nargs="*", choices=tuple(LEVERS), metavar="LEVER",
                        help="Also measure plain Keras with one setting changed at a time (all of them, or those "
                        "named): " + "; ".join(f"{name} ({what})" for name, what in LEVERS.items()))
    parser.add_argument("--trainer-xla", action="store_true",
                        help="Also measure the Trainer with --xla on (trainer_xla).")
    parser.add_argument("--child", choices=VARIANTS + tuple(LEVERS) + tuple(TRAINER_LEVERS), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.size, args.batch, json.loads(args.data))))
        return

    from bench.common import RESULTS_DIR, write_results  # pylint: disable=import-outside-toplevel

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_training_"))
    data = _prepare(work)
    peaks = _peak_flops()
    peak = max(peaks.values())
    print(f"float32 on {os.cpu_count()} cores: " + ", ".join(f"{name} {value / 1e9:.0f} GFLOP/s"
                                                             for name, value in peaks.items()), flush=True)
    levers = tuple(LEVERS) if args.levers == [] else tuple(args.levers or ())
    variants = VARIANTS + levers + (tuple(TRAINER_LEVERS) if args.trainer_xla else ())
    results = {}
    for size in args.sizes:
        rates, failures = {variant: [] for variant in variants}, {}
        for round_number in range(args.rounds):
            # Alternate which goes first: a shared machine's speed drifts.
            order = variants if round_number % 2 == 0 else variants[::-1]
            for variant in order:
                done = subprocess.run(
                    [sys.executable, "-m", "bench.bench_training", "--child", variant, "--size", str(size),
                     "--batch", str(args.batch), "--data", json.dumps(data)],
                    capture_output=True, text=True, check=False,
                    env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0" if variant == "eigen_kernels" else "1"})
                if done.returncode and variant in VARIANTS:
                    raise SystemExit(f"{variant} at {size} px failed:\n{done.stderr[-3000:]}")
                if done.returncode:  # a lever TensorFlow refuses here (NCHW convolutions on a CPU, say)
                    failures[variant] = done.stderr.strip().splitlines()[-1][:300]
                    print(f"{size:>4} px round {round_number + 1} {variant:<8} failed: {failures[variant]}", flush=True)
                    continue
                rate = json.loads(done.stdout.strip().splitlines()[-1])["images_per_second"]
                rates[variant].append(rate)
                print(f"{size:>4} px round {round_number + 1} {variant:<8} {rate:6.2f} img/s", flush=True)
        flops = _training_flops_per_image(size)
        limit = peak / flops
        medians = {variant: statistics.median(rates[variant]) for variant in variants if rates[variant]}
        results[str(size)] = {
            "rounds": args.rounds, "batch": args.batch,
            "peak_gflop_per_second": {name: round(value / 1e9, 1) for name, value in peaks.items()},
            "images_per_second": {variant: round(value, 2) for variant, value in medians.items()},
            "all_rounds": {variant: [round(r, 2) for r in rates[variant]] for variant in variants},
            "trainer_over_keras": round(medians["trainer"] / medians["keras"], 3),
            "levers_over_keras": {lever: round(medians[lever] / medians["keras"], 3)
                                  for lever in (*LEVERS, *TRAINER_LEVERS) if lever in medians},
            "levers_failed": failures,
            "training_gflop_per_image": round(flops / 1e9, 3),
            "flop_limit_images_per_second": round(limit, 1),
            "share_of_limit": {variant: round(value / limit, 3) for variant, value in medians.items()},
        }
        print(f"{size:>4} px: trainer / keras = {results[str(size)]['trainer_over_keras']}; limit {limit:.0f} img/s; "
              f"keras at {medians['keras'] / limit:.0%} of it; levers / keras "
              f"{results[str(size)]['levers_over_keras']}", flush=True)
    # A run of some sizes replaces those sizes' figures and keeps the others'.
    previous = RESULTS_DIR / "training.json"
    sizes = json.loads(previous.read_text())["sizes"] if previous.exists() else {}
    write_results("training.json", {
        "cpu_count": os.cpu_count(), "classes": CLASSES,
        "levers": {**LEVERS, **TRAINER_LEVERS},
        "steps_timed": f"the second epoch's {TRAIN_STEPS} steps, less its first",
        "sizes": {**sizes, **results},
    })


if __name__ == "__main__":
    main()
