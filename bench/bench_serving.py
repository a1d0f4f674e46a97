"""Serving latency of the pushed SavedModel, beside the bare Keras model, in one run.

On one 224x224 JPEG and on a batch of 32, p50 and p95 milliseconds of:

  saved_model_bytes   the pushed SavedModel's serving_default on raw JPEG bytes
                      (header check, decode, resize, model, top-k: what TF Serving runs)
  keras_on_tensors    the same weights as a bare Keras model on already decoded,
                      resized float tensors (no image handling at all)
  decode_jpeg         a plain tf.io.decode_jpeg + resize of the same bytes

``keras_on_tensors + decode_jpeg`` is what the SavedModel could at best cost; the
ratio says how much its embedded preprocessing adds.  The model is ResNet50 at
224x224 with random weights (latency does not depend on the weights), exported
and pushed exactly as the pipeline does.  Rounds interleave the three so drift
hits them alike.  Results go to bench/results/serving_latency.json.

    .venv/bin/python -m bench.bench_serving [--rounds 30]
"""

import argparse
import pathlib
import statistics
import tempfile
import time

import numpy as np
import tensorflow as tf

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from bench.common import generate_jpegs, write_results
from components import image_bytes, serving_signature
from components.model_pusher import smoke, versioning
from components.trainer import export
from components.trainer import model as model_lib
from components.trainer.params import TrainParams
from tests.helpers import build_transform_output

SIZE = 224
LABELS = ["ant", "bee", "wasp"]


def _percentiles(samples):
    ordered = sorted(samples)
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p95_ms": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000, 2)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30, help="Timed calls of each, per input size.")
    args, _ = parser.parse_known_args(argv)

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench_serving_"))
    params = TrainParams(image_size=SIZE, weights="none")
    tf.keras.utils.set_random_seed(0)
    model, _ = model_lib.build_model(len(LABELS), params, weights=None)
    export_dir = str(work / "export")
    export.export_serving_model(model, build_transform_output(LABELS, str(work / "transform")), LABELS, SIZE,
                                export_dir)
    jpegs = [p.read_bytes() for p in sorted(generate_jpegs(work / "images", 32).rglob("*.jpg"))]
    pushed = versioning.push(export_dir, str(work / "serving" / "classifier"), "bench", keep_versions=1,
                             smoke_test=lambda path: smoke.smoke_test(path, jpegs[0]))
    serving = tf.saved_model.load(pushed.path).signatures[serving_signature.SERVING_DEFAULT]
    keras_call = tf.function(lambda images: model(images, training=False))
    decode = tf.function(lambda data: tf.map_fn(
        lambda one: tf.image.resize(tf.io.decode_jpeg(one, channels=3), [SIZE, SIZE]), data,
        fn_output_signature=tf.float32))

    results = {"image_size": SIZE, "rounds": args.rounds, "model": "ResNet50, random weights", "latency": {}}
    for batch in (1, 32):
        data = tf.constant(jpegs[:batch])
        tensors = tf.stack([image_bytes.decode_and_resize(one, SIZE) for one in jpegs[:batch]])
        candidates = {
            "saved_model_bytes": lambda data=data: serving(image_bytes=data)[serving_signature.PROBABILITIES].numpy(),
            "keras_on_tensors": lambda tensors=tensors: keras_call(tensors).numpy(),
            "decode_jpeg": lambda data=data: decode(data).numpy(),
        }
        np.testing.assert_allclose(candidates["saved_model_bytes"](), candidates["keras_on_tensors"](), atol=1e-5)
        for call in candidates.values():  # warm up: trace and first-call costs
            call(), call()
        samples = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, call in candidates.items():
                started = time.perf_counter()
                call()
                samples[name].append(time.perf_counter() - started)
        stats = {name: _percentiles(values) for name, values in samples.items()}
        floor = stats["keras_on_tensors"]["p50_ms"] + stats["decode_jpeg"]["p50_ms"]
        stats["saved_model_over_keras_plus_decode_p50"] = round(stats["saved_model_bytes"]["p50_ms"] / floor, 3)
        results["latency"][f"batch_{batch}"] = stats
        print(f"\nbatch of {batch} JPEG(s), {args.rounds} rounds:")
        for name in candidates:
            print(f"  {name:<20} p50 {stats[name]['p50_ms']:8.2f} ms   p95 {stats[name]['p95_ms']:8.2f} ms")
        print(f"  saved model / (keras + decode), p50: {stats['saved_model_over_keras_plus_decode_p50']}")
    write_results("serving_latency.json", results)


if __name__ == "__main__":
    main()
