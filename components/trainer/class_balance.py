"""How many training examples each class has, and the loss weights that balance them."""

import collections

import tensorflow as tf

from components import features
from components.example_records import compression_of
from components.trainer import dataset


def class_counts(file_patterns) -> dict[str, int]:
    """Examples per label in the given example files (reads the labels only)."""
    files = tf.io.gfile.glob(file_patterns)
    records = tf.data.TFRecordDataset(files, compression_type=compression_of(file_patterns))
    labels = records.batch(1024).map(
        lambda batch: tf.io.parse_example(batch, {features.LABEL: tf.io.FixedLenFeature([], tf.string)})[
            features.LABEL])
    counts = collections.Counter()
    for batch in dataset.without_autotune_thread(labels):
        counts.update(label.decode("utf-8") for label in batch.numpy())
    return dict(counts)


def balanced_class_weights(counts: dict[str, int], label_names: list[str]) -> list[float]:
    """Weight n / (classes * count) per class, in label index order: every class adds
    up to the same total (0 for a class with no example)."""
    total = sum(counts.get(name, 0) for name in label_names)
    return [total / (len(label_names) * counts[name]) if counts.get(name) else 0.0 for name in label_names]
