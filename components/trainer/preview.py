"""Augmentation previews: a grid of originals beside augmented versions.

The Trainer writes one for its training data (``augmentation_preview.png`` in
the model run directory, and as a TensorBoard image). To see a preset on your
own images before training:

    .venv/bin/python -m components.trainer.preview --data-dir PATH --preset heavy --output preview.png

The Trainer's ``--augment-*`` flags refine the preset here as they do in training
(``--no-augment-color``, ``--augment-rotation 0.1``, ...).
"""

import argparse
import dataclasses
import os
import sys
from typing import Optional

import tensorflow as tf
from absl import logging

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from components import features, image_bytes, image_folder, names, sampling, splits
from components.example_records import sample_examples
from components.knobs import HELP, add_flag
from components.trainer import augmentation
from components.trainer.params import PRESETS, AugmentParams, TrainParams

PREVIEW_FILE = "augmentation_preview.png"
# The preview the Trainer writes: originals beside this many augmented versions.
TRAINING_PREVIEW_IMAGES = 8
TRAINING_PREVIEW_VERSIONS = 5
_GAP = 4  # white pixels between tiles


def preview_grid(images: tf.Tensor, params: AugmentParams, versions: int, seed: int) -> tf.Tensor:
    """uint8 grid: one row per image, the original first, then ``versions`` augmented copies."""
    images = tf.cast(images, tf.float32)
    # Mixup and cutmix need labels: give every image its own class.
    labels = tf.eye(tf.shape(images)[0])
    columns = [images]
    for version in range(versions):
        augmented, _ = augmentation.augment_batch(images, labels, tf.constant([seed, version], tf.int64), params)
        columns.append(augmented)
    tiles = tf.stack(columns, axis=1)  # [rows, columns, h, w, 3]
    tiles = tf.pad(tiles, [[0, 0], [0, 0], [0, _GAP], [0, _GAP], [0, 0]], constant_values=255.0)
    rows, cols, height, width = (tf.shape(tiles)[i] for i in range(4))
    grid = tf.reshape(tf.transpose(tiles, [0, 2, 1, 3, 4]), [rows * height, cols * width, 3])
    return tf.cast(tf.round(grid), tf.uint8)


def write_png(grid: tf.Tensor, path: str) -> None:
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    tf.io.write_file(path, tf.io.encode_png(grid))


def write_training_preview(train_files, params: TrainParams, run_dir: str) -> dict:
    """The Trainer's preview of its own augmentation, as a PNG and a TensorBoard image, on a
    sample of the training images stratified by class; returns what the sample holds."""
    if not augmentation.is_active(params.augment):
        return {}
    examples = sample_examples(train_files, TRAINING_PREVIEW_IMAGES, params.seed)
    images = tf.stack([image_bytes.decode_and_resize(e.features.feature[features.IMAGE].bytes_list.value[0],
                                                     params.image_size, tf.uint8) for e in examples])
    grid = preview_grid(images, params.augment, TRAINING_PREVIEW_VERSIONS, params.seed)
    path = os.path.join(run_dir, PREVIEW_FILE)
    write_png(grid, path)
    with tf.summary.create_file_writer(os.path.join(run_dir, "augmentation")).as_default():
        tf.summary.image("augmentation_preview", grid[None], step=0)
    logging.info("Augmentation preview (preset %s): %s", params.augment.preset, path)
    return sampling.describe([e.features.feature[features.LABEL].bytes_list.value[0] for e in examples])


def _sample_files(data_dir: str, count: int, seed: int) -> list[str]:
    """``count`` files of the training images, stratified by class and drawn by ``seed``."""
    split_folders = image_folder.detect_split_folders(data_dir)
    split_folder = split_folders[splits.TRAIN] if split_folders else ""
    files = image_folder.list_split(data_dir, split_folder).files
    if not files:
        raise ValueError(f"No images found under {data_dir!r}.")
    chosen = sampling.choose(((path, image_folder.class_of(path, split_folder)) for path in files), count, seed)
    return [os.path.join(data_dir, names.os_path(path)) for path in chosen]


def _at_least(minimum: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    return parse


def _add_augment_flags(parser: argparse.ArgumentParser) -> None:
    """The Trainer's ``--augment-<field>`` flags, each overriding the preset's value."""
    for field in dataclasses.fields(AugmentParams):
        if field.name != "preset":
            add_flag(parser, "augment-" + field.name.replace("_", "-"), "augment_" + field.name, field.type,
                     field.metadata.get(HELP, "").replace("%", "%%"))


def augment_params(args: argparse.Namespace) -> AugmentParams:
    given = {field.name: getattr(args, "augment_" + field.name) for field in dataclasses.fields(AugmentParams)
             if field.name != "preset" and getattr(args, "augment_" + field.name) is not None}
    return AugmentParams.from_preset(args.preset, **given)


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Preview an augmentation preset on your own images.")
    parser.add_argument("--data-dir", required=True, help="Folder of <class>/<image> or <split>/<class>/<image>.")
    parser.add_argument("--preset", "--augment-preset", default="standard", choices=sorted(PRESETS))
    parser.add_argument("--image-size", type=_at_least(8), default=224, help="Side of the square tiles, in pixels.")
    parser.add_argument("--count", type=_at_least(1), default=8, help="How many images (rows).")
    parser.add_argument("--versions", type=_at_least(1), default=5, help="Augmented copies per image (columns).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--output", default="augmentation_preview.png")
    _add_augment_flags(parser)
    return parser


def main(argv: Optional[list[str]] = None) -> int:
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    try:
        params = augment_params(args)
        params.check_image_size(args.image_size)
    except ValueError as error:
        parser.error(str(error))
    try:
        paths = _sample_files(args.data_dir, args.count, args.seed)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    images, skipped = [], []
    for path in paths:
        try:
            images.append(image_bytes.decode_and_resize(tf.io.read_file(path), args.image_size))
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as error:
            skipped.append(f"{path}: {type(error).__name__}")
    if not images:
        print(f"error: none of the sampled files decodes: {skipped}", file=sys.stderr)
        return 2
    grid = preview_grid(tf.stack(images), params, args.versions, args.seed)
    write_png(grid, args.output)
    for line in skipped:
        print(f"skipped (not decodable): {line}", file=sys.stderr)
    refined = " (refined by --augment-* flags)" if params != AugmentParams.from_preset(args.preset) else ""
    print(f"Wrote {args.output}: {len(images)} images (rows), the original then {args.versions} "
          f"'{args.preset}' augmentations{refined} (columns).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
