"""What the validator's tests share: the relaxed policy most of their runs use, and the
validated examples a run wrote, by path."""

import json
import os

import tensorflow as tf

from components import features
from components.image_validator.policy import ValidationPolicy

RELAXED = ValidationPolicy(min_examples_per_class=1, max_rejected_fraction=1.0)


def validated_paths(validated):
    paths = {}
    for split in json.loads(validated.split_names):
        files = tf.io.gfile.glob(os.path.join(validated.uri, f"Split-{split}", "*"))
        assert files and all(f.endswith(".tfrecord") for f in files)  # written uncompressed
        for record in tf.data.TFRecordDataset(files):
            example = tf.train.Example.FromString(record.numpy())
            paths[example.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode()] = example
    return paths
