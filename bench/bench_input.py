"""Input pipeline and augmentation throughput, side by side, plus training throughput.

On the same images (the hymenoptera training split, when present beside the
repository, and a generated set of 224x224 JPEGs), the same batch size (32), the
same output size (224x224) and the same augmentation set (horizontal flip,
rotation +-18 degrees, zoom 10%, translation 10%, brightness 10%, contrast 20%;
ImageDataGenerator has no contrast op, and its brightness is a factor of 0.9 to
1.1 where the others shift by up to 10% of the range), images/s of:

  input_fn          this product's Trainer input pipeline (components/trainer/dataset.py),
                    on the examples the ImageValidator writes (what the Trainer reads),
                    with its in-memory uint8 cache and, as by default, balanced class
                    weights in its batches
  image_data_gen    tf-keras ImageDataGenerator(...).flow_from_directory
  idfd_layers       image_dataset_from_directory + Keras preprocessing layers
                    (mapped with AUTOTUNE and prefetched, as the Keras guide does)
  plain_tf_data     tf.data from the files: decode, resize, the same augmentation
                    ops, no parallel calls, no prefetch (tf.data's own map
                    parallelisation and injected prefetch switched off), no cache
  decode_only       input_fn's own reading and parallel decode + resize and nothing
                    more (no augmentation, no labels, no cache), over the first epoch
                    only: the least work any pipeline must do in an epoch that decodes
                    every image. Its ratio to image_data_gen shows how far a first
                    epoch can go here with this decoding, before any augmentation
  input_fn_disk_cache_warm
                    input_fn with a directory cache (--cache DIR) that its warm-up run
                    filled, as a later training run on the same examples finds it: no
                    image is decoded. Its ratios to image_data_gen show how far a first
                    epoch can go here with no decoding at all

Each run reads 5 epochs, as many as a default training run (the `full` preset:
3 head and 2 fine-tuning epochs, one input pipeline) reads, timed from building
the pipeline. The tf.data ones are read as the Trainer reads its pipeline: one
repeated dataset for both phases, one `fit` per phase reading its epochs through
an iterator of its own (Keras starts one per `fit`) and dropping it after them,
so the second phase starts the pipeline again (on the cache the first filled).
ImageDataGenerator is read straight through.
Images/s are reported over the first epoch, the first 3 and all 5: the cache
makes the later epochs cheaper, so the ratios depend on the window, and the
first epoch alone is the worst case for this pipeline.

After one untimed warm-up run of each, they are repeated in turn; median
images/s and the median of each repeat's ratios are printed and written to
bench/results/input_pipeline.json, with every repeat's ratio (their spread
shows how much the machine's speed moved during the run). Then the real model
(ResNet50, 128x128, batch 16, random init) is trained fed by input_fn, and fed
by synthetic in-memory tensors, in turn, 9 times (each time one epoch of 8
steps after a warm-up one; single rounds swing by a third on this machine), and
the median ratio of their images/s is printed with the ratio of each round.
Then camera-sized JPEGs (64 each of 1600x1200 and 4032x3024) are decoded and
resized to 224x224 the pipeline's way (decoded at a reduced scale first) and by
decoding them whole, then the same resize, in turn, 9 times, and the median of
their time ratios is printed per size.
Last, the augmentation's XLA warp and TensorFlow's ImageProjectiveTransformV3
(bilinear, reflected borders: the same result) warp one batch of 32 224x224
images in turn, 15 times, and the median of their time ratios is printed.

    .venv/bin/python -m bench.bench_input [--repeats 7] [--generated 500] [--skip-training]
"""

import argparse
import collections
import dataclasses
import itertools
import os
import pathlib
import statistics
import sys
import tempfile
import time

import tensorflow as tf

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from bench.common import generate_jpegs, write_results
from components import features, image_bytes
from components.trainer import augmentation, dataset
from components.trainer import model as model_lib
from components.trainer.augmentation import geometry
from components.trainer.class_balance import balanced_class_weights, class_counts
from components.trainer.params import AugmentParams, TrainParams
from tests.helpers import HYMENOPTERA, build_transform_output, run_ingest, run_validator

SIZE, BATCH = 224, 32
AUGMENT = AugmentParams.from_preset(
    "none", horizontal_flip=0.5, rotation_prob=1.0, rotation=0.05, zoom_prob=1.0, zoom=0.1,
    translate_prob=1.0, translate=0.1, brightness_prob=1.0, brightness=0.1, contrast_prob=1.0, contrast=0.2,
)
PARAMS = TrainParams(image_size=SIZE, batch_size=BATCH, weights="none", cache="memory", augment=AUGMENT)
# A default training run's phases (epochs each) over its one training pipeline, and the windows reported.
PHASES = (PARAMS.head_epochs, PARAMS.finetune_epochs)
EPOCHS = sum(PHASES)
WINDOWS = (1, 3, EPOCHS)


def epoch_ends(batches, images_per_epoch: int, start: float, phases=PHASES):
    """Seconds from ``start`` to the end of each epoch of ``batches``, a one-epoch
    pipeline read as the Trainer's ``fit`` calls read theirs: one repeated dataset
    for all phases, each phase reading its epochs through an iterator of its own
    (Keras with ``steps_per_epoch``), which it drops when they are read. Batches
    never span two epochs."""
    repeated, ends, seen = batches.repeat(), [], 0
    for phase_end in itertools.accumulate(phases):  # the epoch count at the end of each phase
        for images, *_ in repeated:
            seen += int(images.shape[0])
            if seen % images_per_epoch == 0:
                ends.append(time.perf_counter() - start)
                if len(ends) == phase_end:
                    break
    assert len(ends) == sum(phases), (len(ends), seen, images_per_epoch)
    return ends


def run_input_fn(start, examples_pattern, images, tft_output, class_weights, params=PARAMS):
    ds = dataset.make_dataset(examples_pattern, tft_output, params, training=True, num_classes=len(class_weights),
                              class_weights=class_weights)
    return images, epoch_ends(ds, images, start)


def run_decode_only(start, examples_pattern, images):
    batches = dataset.decoded_images(examples_pattern, PARAMS, shuffle_files=False).batch(BATCH)
    return images, epoch_ends(batches.prefetch(tf.data.AUTOTUNE), images, start, phases=(1,))


def run_image_data_generator(start, folder):
    generator = tf.keras.preprocessing.image.ImageDataGenerator(
        horizontal_flip=True, rotation_range=18, zoom_range=0.1, width_shift_range=0.1,
        height_shift_range=0.1, brightness_range=(0.9, 1.1),
    )
    flow = generator.flow_from_directory(str(folder), target_size=(SIZE, SIZE), batch_size=BATCH,
                                         class_mode="sparse", seed=0, shuffle=True)
    ends = []
    for _ in range(EPOCHS):
        for _ in range(len(flow)):
            next(flow)
        ends.append(time.perf_counter() - start)
    return flow.samples, ends


def run_idfd_layers(start, folder):
    layers = tf.keras.Sequential([
        tf.keras.layers.RandomFlip("horizontal", seed=0),
        tf.keras.layers.RandomRotation(0.05, seed=0),
        tf.keras.layers.RandomZoom(0.1, seed=0),
        tf.keras.layers.RandomTranslation(0.1, 0.1, seed=0),
        tf.keras.layers.RandomBrightness(0.1, value_range=(0, 255), seed=0),
        tf.keras.layers.RandomContrast(0.2, seed=0),
    ])
    ds = tf.keras.utils.image_dataset_from_directory(str(folder), image_size=(SIZE, SIZE), batch_size=BATCH,
                                                     seed=0)
    images = len(ds.file_paths)
    ds = ds.map(lambda x, y: (layers(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return images, epoch_ends(ds.prefetch(tf.data.AUTOTUNE), images, start)


def run_plain_tf_data(start, folder):
    files = sorted(str(p) for p in pathlib.Path(folder).glob("*/*"))
    ds = tf.data.Dataset.from_tensor_slices(files).shuffle(len(files), seed=0)
    ds = ds.map(lambda path: image_bytes.decode_and_resize(tf.io.read_file(path), SIZE)).batch(BATCH)
    seeds = tf.data.Dataset.random(seed=0, rerandomize_each_iteration=True).batch(2)
    ds = tf.data.Dataset.zip((ds, seeds)).map(
        lambda images, seed: augmentation.augment_batch(images, tf.zeros([tf.shape(images)[0], 1]), seed, AUGMENT))
    # tf.data would otherwise run these maps in parallel and add a prefetch on its own
    # (default optimisations), which roughly doubles this pipeline's speed.
    options = tf.data.Options()
    options.experimental_optimization.map_parallelization = False
    options.experimental_optimization.inject_prefetch = False
    return len(files), epoch_ends(ds.with_options(options), len(files), start)


def window_rates(fn, *args):
    """Images/s over the first ``w`` epochs, for each window ``w`` the run reads."""
    images, ends = fn(time.perf_counter(), *args)
    return {w: images * w / ends[w - 1] for w in WINDOWS if w <= len(ends)}


def paired_ratios(ours, theirs, window):
    """The median and every repeat's ratio of two runs' images/s over ``window`` epochs,
    paired repeat by repeat."""
    each = [o[window] / t[window] for o, t in zip(ours, theirs)]
    return {"median": round(statistics.median(each), 2), "each_repeat": [round(r, 2) for r in each]}


def bench_dataset(name, folder, work, repeats):
    ingested = run_ingest(folder, work / f"{name}_ingested", return_artifact=True)
    validated, _ = run_validator(ingested, work / f"{name}_validation")
    pattern = os.path.join(validated.uri, "Split-*", "*")
    counts = class_counts(pattern)
    validated_count = sum(counts.values())
    labels = sorted(p.name for p in pathlib.Path(folder).iterdir() if p.is_dir())
    tft_output = build_transform_output(labels, str(work / f"{name}_transform"))
    # The Trainer's default: balanced class weights, by label id, carried by the batches.
    vocabulary = [label.decode() for label in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    class_weights = balanced_class_weights(counts, vocabulary)
    disk_cached = dataclasses.replace(PARAMS, cache=f"{work / name}_image_cache/")
    runs = {
        "input_fn": lambda start: run_input_fn(start, pattern, validated_count, tft_output, class_weights),
        "image_data_gen": lambda start: run_image_data_generator(start, folder),
        "idfd_layers": lambda start: run_idfd_layers(start, folder),
        "plain_tf_data": lambda start: run_plain_tf_data(start, folder),
        "decode_only": lambda start: run_decode_only(start, pattern, validated_count),
        # Filled by its warm-up run below; the timed runs only read it.
        "input_fn_disk_cache_warm": lambda start: run_input_fn(
            start, pattern, validated_count, tft_output, class_weights, disk_cached),
    }
    # One untimed run of each first: tracing, XLA compilation and the OS file cache
    # are one-off costs, and the first pipeline to run would pay them for the others.
    for run in runs.values():
        run(time.perf_counter())
    rates = {key: [] for key in runs}  # per repeat: {window: images/s}
    for _ in range(repeats):
        for key, run in runs.items():
            rates[key].append(window_rates(run))
    result = {"images": len(list(pathlib.Path(folder).glob("*/*"))), "images_after_validation": validated_count,
              "windows": {}}
    for w in WINDOWS:
        # Ratios pair the runs of one repeat, made minutes apart at most: this machine's
        # speed drifts by more than that between repeats.
        read = {key: values for key, values in rates.items() if w in values[0]}
        ratios = {key: paired_ratios(read["input_fn"], values, w) for key, values in read.items()
                  if key not in ("input_fn", "input_fn_disk_cache_warm")}
        result["windows"][f"{w}_epochs"] = {
            "images_per_second": {key: round(statistics.median(r[w] for r in values), 1)
                                  for key, values in read.items()},
            "input_fn_speedup": {key: each["median"] for key, each in ratios.items()},
            # Every repeat's ratio, in run order: how far one repeat can stray from the median.
            "input_fn_speedup_each_repeat": {key: each["each_repeat"] for key, each in ratios.items()},
        }
    # An augmenting pipeline that decodes every image this way is slower than decode_only.
    result["decode_only_over_image_data_gen_first_epoch"] = paired_ratios(
        rates["decode_only"], rates["image_data_gen"], 1)
    # With nothing decoded, what is left is starting the pipeline and augmenting.
    result["input_fn_disk_cache_warm_over_image_data_gen"] = {
        f"{w}_epochs": paired_ratios(rates["input_fn_disk_cache_warm"], rates["image_data_gen"], w) for w in WINDOWS}
    return result, (pattern, tft_output, class_weights)


def alternated_seconds(runs, rounds):
    """Seconds each of ``runs`` (name -> callable) took in each of ``rounds`` rounds, the
    runs alternated within a round; an untimed first round traces, compiles and reads files."""
    seconds = {name: [] for name in runs}
    for round_number in range(rounds + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_number:
                seconds[name].append(time.perf_counter() - start)
    return seconds


def bench_warp(rounds=15):
    images = tf.random.stateless_uniform([BATCH, SIZE, SIZE, 3], seed=[1, 2], maxval=256, dtype=tf.int32)
    images = tf.cast(images, tf.uint8)
    angles = tf.random.stateless_uniform([BATCH], seed=[3, 4], minval=-0.3, maxval=0.3)
    shifts = tf.fill([BATCH], 7.0)
    transforms = tf.stack([tf.cos(angles), -tf.sin(angles), shifts, tf.sin(angles), tf.cos(angles), shifts], axis=1)
    warps = {
        "xla_warp": tf.function(geometry.affine_warp),
        "image_projective_transform": tf.function(lambda x, t: tf.raw_ops.ImageProjectiveTransformV3(
            images=tf.cast(x, tf.float32), transforms=tf.pad(t, [[0, 0], [0, 2]]), output_shape=[SIZE, SIZE],
            interpolation="BILINEAR", fill_mode="REFLECT", fill_value=0.0)),
    }
    seconds = alternated_seconds({name: lambda warp=warp: warp(images, transforms).numpy()
                                  for name, warp in warps.items()}, rounds)
    ratios = [theirs / ours for ours, theirs in zip(seconds["xla_warp"], seconds["image_projective_transform"])]
    return {"seconds_per_batch": {name: round(statistics.median(s), 4) for name, s in seconds.items()},
            "xla_warp_speedup": round(statistics.median(ratios), 2)}


def bench_large_jpeg_decode(work, rounds=9, count=64):
    """Decoding and resizing camera-sized JPEGs to 224x224 the pipeline's way (a JPEG
    at least twice the size both ways is decoded at 1/2, 1/4 or 1/8 scale first)
    against decoding them whole, then the same area resize, in parallel maps as the
    pipeline runs them: the median of each round's time ratio, per photo size."""
    def full_decode(encoded):
        image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
        return tf.cast(tf.round(tf.image.resize(image, [SIZE, SIZE], method="area")), tf.uint8)

    def ours(encoded):
        return image_bytes.decode_and_resize(encoded, SIZE, tf.uint8)

    results = {}
    for width, height in ((1600, 1200), (4032, 3024)):
        folder = generate_jpegs(work / f"photos_{width}x{height}", count, width, height)
        files = sorted(str(p) for p in folder.glob("*/*"))
        encoded = tf.data.Dataset.from_tensor_slices(files).map(tf.io.read_file).cache()
        pipelines = {name: encoded.map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(BATCH).prefetch(1)
                     for name, fn in (("decode_and_resize", ours), ("full_decode", full_decode))}
        seconds = alternated_seconds({name: lambda pipeline=pipeline: collections.deque(pipeline, maxlen=0)
                                      for name, pipeline in pipelines.items()}, rounds)
        ratios = [full / scaled for scaled, full in zip(seconds["decode_and_resize"], seconds["full_decode"])]
        results[f"{width}x{height}"] = {
            "images_per_second": {name: round(count / statistics.median(s), 1) for name, s in seconds.items()},
            "decode_and_resize_speedup": round(statistics.median(ratios), 2)}
    return results


class _EpochTimer(tf.keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.durations = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.durations.append(time.perf_counter() - self.start)


def bench_training(pattern, tft_output, class_weights, steps=8, rounds=9):
    params = dataclasses.replace(PARAMS, image_size=128, batch_size=16)
    num_classes = len(class_weights)
    real = dataset.make_dataset(pattern, tft_output, params, training=True, num_classes=num_classes,
                                class_weights=class_weights).repeat()
    images = tf.random.uniform([16, 128, 128, 3], 0, 255)
    synthetic = tf.data.Dataset.from_tensors(
        (images, tf.one_hot(tf.zeros([16], tf.int32), num_classes), tf.ones([16]))).repeat()
    models = {}
    for name in ("synthetic", "input_fn"):
        tf.keras.utils.set_random_seed(0)
        models[name], _ = model_lib.build_model(num_classes, params, weights=None)
        models[name].compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.CategoricalCrossentropy())
    rates = {"synthetic": [], "input_fn": []}
    for _ in range(rounds):
        for name, data in (("synthetic", synthetic), ("input_fn", real)):
            timer = _EpochTimer()
            # The first epoch starts the input pipeline (and traces, in the first round); the second is timed.
            models[name].fit(data, steps_per_epoch=steps, epochs=2, callbacks=[timer], verbose=0)
            rates[name].append(steps * 16 / timer.durations[1])
    ratios = [real_rate / synthetic_rate for real_rate, synthetic_rate in zip(rates["input_fn"], rates["synthetic"])]
    return {
        "images_per_second": {k: round(statistics.median(v), 1) for k, v in rates.items()},
        "input_fn_over_synthetic": round(statistics.median(ratios), 3),
        "input_fn_over_synthetic_each_round": [round(ratio, 3) for ratio in ratios],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--generated", type=int, default=500, help="How many 224x224 JPEGs to generate.")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)
    results = {"repeats": args.repeats, "epochs": EPOCHS, "batch_size": BATCH, "image_size": SIZE,
               "cpu_count": os.cpu_count(), "datasets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        work = pathlib.Path(tmp)
        folders = {"generated_224_jpeg": generate_jpegs(work / "generated", args.generated)}
        if HYMENOPTERA.is_dir():
            folders["hymenoptera_train"] = HYMENOPTERA / "train"
        training_inputs = None
        for name, folder in folders.items():
            result, inputs = bench_dataset(name, folder, work, args.repeats)
            training_inputs = training_inputs or inputs
            results["datasets"][name] = result
            print(f"\n{name}: {result['images']} images ({result['images_after_validation']} after validation), "
                  f"median of {args.repeats}")
            for window, figures in result["windows"].items():
                print(f"  over {window.replace('_', ' ')}:")
                for key, rate in figures["images_per_second"].items():
                    speedup = figures["input_fn_speedup"].get(key)
                    each = figures["input_fn_speedup_each_repeat"].get(key)
                    spread = f" (repeats x{min(each):.2f} to x{max(each):.2f})" if each else ""
                    ratio = f"   input_fn is x{speedup:.2f}{spread}" if speedup else ""
                    print(f"    {key:24s} {rate:8.1f} img/s{ratio}")
            alone = result["decode_only_over_image_data_gen_first_epoch"]
            print(f"  decode_only / image_data_gen over the first epoch (decoding alone, no augmentation): "
                  f"x{alone['median']:.2f} (repeats x{min(alone['each_repeat']):.2f} to "
                  f"x{max(alone['each_repeat']):.2f})")
            warm = result["input_fn_disk_cache_warm_over_image_data_gen"]
            print("  input_fn_disk_cache_warm / image_data_gen (a cache filled by an earlier run, nothing decoded): "
                  + ", ".join(f"x{figures['median']:.2f} over {window.replace('_', ' ')}"
                              for window, figures in warm.items()))
        if not args.skip_training:
            results["training"] = bench_training(*training_inputs)
            training = results["training"]
            print(f"\ntraining (ResNet50 128x128, batch 16): {training['images_per_second']} img/s; "
                  f"input_fn / synthetic = {training['input_fn_over_synthetic']:.3f} "
                  f"(rounds: {training['input_fn_over_synthetic_each_round']})")
        results["large_jpeg_decode"] = bench_large_jpeg_decode(work)
        for photo, figures in results["large_jpeg_decode"].items():
            print(f"\n{photo} JPEGs to {SIZE}x{SIZE}: decode_and_resize is x{figures['decode_and_resize_speedup']:.2f} "
                  f"as fast as a full decode then the same resize ({figures['images_per_second']} img/s)")
    results["warp"] = bench_warp()
    print(f"\nwarp of {BATCH} {SIZE}x{SIZE} images: the XLA warp is x{results['warp']['xla_warp_speedup']:.2f} "
          f"as fast as ImageProjectiveTransformV3 ({results['warp']['seconds_per_batch']} s)")
    write_results("input_pipeline.json", results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
