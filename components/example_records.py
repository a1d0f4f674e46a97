"""The examples the pipeline trains on, and the record files of an Examples split.

``image_example`` builds the ``tf.Example`` of one accepted image, as the image
validator writes it and the Trainer, Evaluator and BulkInferrer read it: the
encoded bytes (never pixels), label, relative path, what the header says and
the file's hash.

ExampleGen writes GZIP-compressed ``*.gz`` files; the validator writes plain ones
(the images are compressed already).  ``sample_examples`` draws a stratified,
seeded sample of a split without holding more than the sample in memory."""

import hashlib
import posixpath
from collections.abc import Iterator
from typing import Optional, Union

import tensorflow as tf

from components import features, image_bytes, sampling


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def image_example(relative_path: str, label: str, data: bytes, header: image_bytes.Header,
                  sha256: str) -> tf.train.Example:
    """The example of one image: ``data`` as trained on (the file's bytes or their conversion),
    ``header`` describing them, and ``sha256`` the hex digest of the file as found."""
    return tf.train.Example(features=tf.train.Features(feature={
        features.IMAGE: _bytes(data),
        features.LABEL: _bytes(label.encode("utf-8")),
        features.RELATIVE_PATH: _bytes(relative_path.encode("utf-8")),
        features.FORMAT: _bytes(header.image_format.encode("utf-8")),
        features.HEIGHT: _int(header.height),
        features.WIDTH: _int(header.width),
        features.CHANNELS: _int(header.channels),
        features.SHA256: _bytes(sha256.encode("ascii")),
    }))


def image_to_example(relative_path: str, data: bytes, label: Optional[str] = None) -> tf.train.Example:
    """``image_example`` of a file's own bytes, its header read from them; ``label`` defaults to
    the file's parent folder."""
    label = posixpath.basename(posixpath.dirname(relative_path)) if label is None else label
    return image_example(relative_path, label, data, image_bytes.read_header(data), hashlib.sha256(data).hexdigest())


def example_files(file_patterns: Union[str, list[str]]) -> list[str]:
    """The files ``file_patterns`` match, sorted; ValueError if none."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {patterns}.")
    return files


def compression_of_file(path: str) -> str:
    """"GZIP" for a ``*.gz`` record file (as ExampleGen writes), "" for a plain one."""
    return "GZIP" if path.endswith(".gz") else ""


def compression_of(file_patterns: Union[str, list[str]]) -> str:
    """The compression of the record files ``file_patterns`` match (one for all)."""
    return compression_of_file(example_files(file_patterns)[0])


def files_size(file_patterns: Union[str, list[str]]) -> int:
    """The bytes of the record files ``file_patterns`` match."""
    return sum(tf.io.gfile.stat(path).length for path in example_files(file_patterns))


_KEYS = {features.RELATIVE_PATH: tf.io.FixedLenFeature([], tf.string),
         features.LABEL: tf.io.FixedLenFeature([], tf.string)}


def _batches(files: list[str]) -> Iterator[tuple[list[bytes], list[str], list[str]]]:
    """The records of ``files`` a batch at a time, with each one's path and label."""
    records = tf.data.TFRecordDataset(files, compression_type=compression_of_file(files[0])).batch(256)
    for batch in records.map(lambda batch: (batch, tf.io.parse_example(batch, _KEYS))):
        serialized, keys = batch
        yield (list(serialized.numpy()), [p.decode("utf-8") for p in keys[features.RELATIVE_PATH].numpy()],
               [label.decode("utf-8") for label in keys[features.LABEL].numpy()])


def sample_examples(file_patterns: Union[str, list[str]], total: int, seed: int) -> list[tf.train.Example]:
    """``total`` examples of the record files (all of them when there are fewer), stratified by
    label and drawn by ``seed`` (``components/sampling.py``), in the sample's order.  Reads the
    files twice, the paths and labels first, and keeps only the chosen records."""
    files = example_files(file_patterns)
    keys = ((path, label) for _, paths, labels in _batches(files) for path, label in zip(paths, labels))
    chosen = sampling.choose(keys, total, seed)
    wanted, found = set(chosen), {}
    for serialized, paths, _ in _batches(files):
        found.update((path, record) for path, record in zip(paths, serialized) if path in wanted)
    return [tf.train.Example.FromString(found[path]) for path in chosen]
