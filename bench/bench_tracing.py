"""What the Trainer spends before and after its steps: tracing ResNet50 for fit, the export
and TFLite, with and without the product's two fixes to it, side by side.

Each round runs two fresh processes (the AutoGraph rule is process-wide), alternating:

  product    AutoGraph leaves tf_keras' own code as written (components/trainer/model.py);
             the TFLite converter is handed a plain module of the model's variables
  baseline   AutoGraph converts tf_keras' code (its rules name only the ``keras``
             package); the converter is handed the Keras model, as it was before

Each process builds ResNet50 with random weights and times, in seconds:

  fit               one head epoch of 2 steps with validation: mostly tracing the
                    train and test steps (the data is a few random images)
  export            export.export_serving_model, as run_fn exports
  tflite_float16    one float16 conversion

The ratio per stage is product / baseline (medians over the rounds); the model's
outputs are checked to be the same in both.  Results go to bench/results/tracing.json.

    .venv/bin/python -m bench.bench_tracing [--rounds 3] [--image-size 32]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf
from tensorflow.python.autograph.core import config as autograph_config

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from bench.common import write_results
from components.trainer import export, tflite_export
from components.trainer import model as model_lib
from components.trainer.params import TrainParams
from tests.helpers import build_transform_output

VARIANTS = ("product", "baseline")
STAGES = ("fit", "export", "tflite_float16")


def _one_run(variant: str, image_size: int) -> dict:
    """Runs in a fresh process: the stages' seconds and the model's probabilities on one image."""
    if variant == "baseline":
        autograph_config.CONVERSION_RULES = tuple(
            rule for rule in autograph_config.CONVERSION_RULES if not rule.matches("tf_keras"))
        tflite_export._variables_of = lambda model: model  # the converter saves the Keras object graph

    labels = ["ant", "bee", "wasp"]
    work = tempfile.mkdtemp(prefix="bench_tracing_")
    params = TrainParams(image_size=image_size, weights="none")
    tf.keras.utils.set_random_seed(0)
    model, backbone = model_lib.build_model(len(labels), params, weights=None)
    model_lib.freeze_backbone(backbone)
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), loss="categorical_crossentropy", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (8, image_size, image_size, 3)).astype(np.float32)
    targets = tf.keras.utils.to_categorical(np.arange(8) % len(labels), len(labels))
    seconds = {}

    started = time.perf_counter()
    model.fit(images, targets, batch_size=4, epochs=1, validation_data=(images, targets), verbose=0)
    seconds["fit"] = time.perf_counter() - started

    started = time.perf_counter()
    export.export_serving_model(model, build_transform_output(labels, f"{work}/transform"), labels, image_size,
                                f"{work}/export")
    seconds["export"] = time.perf_counter() - started

    started = time.perf_counter()
    function = tflite_export.classify_function(model, image_size)
    tflite_export.convert(model, function, image_size, tflite_export.FLOAT16, images[:0].astype(np.uint8))
    seconds["tflite_float16"] = time.perf_counter() - started
    return {"seconds": seconds, "probabilities": model.predict(images[:1], verbose=0)[0].tolist()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3, help="Processes of each variant, alternating.")
    parser.add_argument("--image-size", type=int, default=32, help="The model's input size.")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)
    if args.child:
        print(json.dumps(_one_run(args.child, args.image_size)))
        return

    runs = {variant: [] for variant in VARIANTS}
    for round_number in range(args.rounds):
        for variant in VARIANTS:
            result = subprocess.run(
                [sys.executable, "-m", "bench.bench_tracing", "--child", variant, "--image-size", str(args.image_size)],
                capture_output=True, text=True, check=True,
            )
            run = json.loads(result.stdout.strip().splitlines()[-1])
            runs[variant].append(run)
            print(f"round {round_number + 1} {variant:<9} " +
                  "  ".join(f"{stage} {run['seconds'][stage]:6.1f} s" for stage in STAGES), flush=True)
    first = {variant: runs[variant][0]["probabilities"] for variant in VARIANTS}
    if max(abs(a - b) for a, b in zip(first["product"], first["baseline"])) > 1e-5:
        raise SystemExit(f"The variants' models answer differently: {first}")

    medians = {variant: {stage: round(statistics.median(run["seconds"][stage] for run in runs[variant]), 2)
                         for stage in STAGES} for variant in VARIANTS}
    ratios = {stage: round(medians["product"][stage] / medians["baseline"][stage], 3) for stage in STAGES}
    print("\nmedian seconds, product / baseline:")
    for stage in STAGES:
        print(f"  {stage:<16} {medians['product'][stage]:7.1f} / {medians['baseline'][stage]:7.1f} = {ratios[stage]}")
    write_results("tracing.json", {
        "image_size": args.image_size, "rounds": args.rounds, "cpu_count": os.cpu_count(),
        "model": "ResNet50, random weights",
        "median_seconds": medians, "product_over_baseline": ratios,
    })


if __name__ == "__main__":
    main()
