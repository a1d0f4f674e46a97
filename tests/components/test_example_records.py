"""The examples the pipeline trains on, and the record files of a split."""

import hashlib

import pytest
import tensorflow as tf

from components import features
from components.example_records import compression_of, example_files, files_size, image_to_example
from tests.helpers import encode_image


def _value(example: tf.train.Example, name: str):
    feature = example.features.feature[name]
    values = feature.bytes_list.value or feature.int64_list.value
    return values[0].decode() if isinstance(values[0], bytes) and name != features.IMAGE else values[0]


def test_image_to_example_keeps_bytes_and_metadata():
    data = encode_image(size=(50, 20), image_format="PNG")
    example = image_to_example("train/cats/my cat.png", data)
    assert _value(example, features.IMAGE) == data  # the encoded bytes, not pixels
    assert _value(example, features.LABEL) == "cats"
    assert _value(example, features.RELATIVE_PATH) == "train/cats/my cat.png"
    assert _value(example, features.FORMAT) == "png"
    assert (_value(example, features.HEIGHT), _value(example, features.WIDTH)) == (20, 50)
    assert _value(example, features.CHANNELS) == 3
    assert _value(example, features.SHA256) == hashlib.sha256(data).hexdigest()


def test_record_files_are_found_sized_and_their_compression_told(tmp_path):
    for name in ("data-00001-of-00002.tfrecord", "data-00000-of-00002.tfrecord"):
        with tf.io.TFRecordWriter(str(tmp_path / name)) as writer:
            writer.write(b"x" * 10)
    pattern = str(tmp_path / "*")
    assert [p.rsplit("/", 1)[1] for p in example_files(pattern)] == ["data-00000-of-00002.tfrecord",
                                                                      "data-00001-of-00002.tfrecord"]
    assert files_size(pattern) == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert compression_of(pattern) == ""
    with pytest.raises(ValueError, match="No example files"):
        example_files(str(tmp_path / "nothing-*"))
