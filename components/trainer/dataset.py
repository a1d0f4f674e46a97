"""The Trainer's ``tf.data`` input pipeline over the ingested TFRecord examples."""

from typing import List, Union

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import augment, image_ops
from components.trainer.params import TrainParams

_AUTOTUNE = tf.data.AUTOTUNE
_PARSE_SPEC = {
    features.IMAGE: tf.io.FixedLenFeature([], tf.string),
    features.LABEL: tf.io.FixedLenFeature([], tf.string),
}


def _compression_of(file_patterns: Union[str, List[str]]) -> str:
    """"GZIP" for ``*.gz`` record files (as ExampleGen writes), "" for plain ones."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = [f for pattern in patterns for f in tf.io.gfile.glob(pattern)]
    if not files:
        raise ValueError(f"No example files match {patterns}.")
    return "GZIP" if files[0].endswith(".gz") else ""


def label_ids(labels: tf.Tensor, tft_output: tft.TFTransformOutput) -> tf.Tensor:
    """Maps ``[batch]`` label strings to vocabulary indices with Transform's own graph."""
    transformed = tft_output.transform_features_layer()({features.LABEL: tf.expand_dims(labels, -1)})
    return tf.reshape(transformed[features.LABEL_ID], [-1])


def make_dataset(
    file_patterns: Union[str, List[str]],
    tft_output: tft.TFTransformOutput,
    params: TrainParams,
    training: bool,
) -> tf.data.Dataset:
    """Returns batches of ``(images float32 [b, s, s, 3] in [0, 255], label ids int64 [b])``.

    Training data is shuffled (files and records) and augmented; evaluation data
    is read in a fixed order and never augmented.
    """
    files = tf.data.Dataset.list_files(file_patterns, shuffle=training, seed=params.seed)
    records = files.interleave(
        lambda path: tf.data.TFRecordDataset(path, compression_type=_compression_of(file_patterns)),
        cycle_length=4,
        num_parallel_calls=_AUTOTUNE,
        deterministic=True,
    )
    if training:
        # Shuffle the encoded records: far smaller than decoded pixels.
        records = records.shuffle(params.shuffle_buffer, seed=params.seed, reshuffle_each_iteration=True)

    # The examples come from the image validator: every one decodes.
    examples = records.map(lambda r: tf.io.parse_single_example(r, _PARSE_SPEC), num_parallel_calls=_AUTOTUNE)
    decoded = examples.map(
        lambda ex: (image_ops.decode_and_resize(ex[features.IMAGE], params.image_size), ex[features.LABEL]),
        num_parallel_calls=_AUTOTUNE,
        deterministic=True,
    )
    batches = decoded.batch(params.batch_size).map(
        lambda images, labels: (images, label_ids(labels, tft_output)),
        num_parallel_calls=_AUTOTUNE,
    )
    if training and params.augment.enabled:
        # One seed per batch, drawn from a seeded stream: reproducible augmentation.
        seeds = tf.data.Dataset.random(seed=params.seed, rerandomize_each_iteration=True).batch(2)
        batches = tf.data.Dataset.zip((batches, seeds)).map(
            lambda batch, seed: (augment.augment_batch(batch[0], seed, params.augment), batch[1]),
            num_parallel_calls=_AUTOTUNE,
        )
    return batches.prefetch(_AUTOTUNE)
