"""Reading and writing the validator's files in Beam, through TensorFlow's own readers and writers.

Beam's ``ReadFromTFRecord``/``WriteToTFRecord`` checksum every record with
``crcmod`` in Python, and each file sink adds stages of its own; on the direct
runner every stage costs a fixed part of a second.  Here ``tf.data`` reads, and
one DoFn writes every output of a bundle (records per split, verdict lines) to
staging files of its own, passing their names on; only the files of bundles
that finished are moved into place, once, at the end, so a retried bundle
leaves no duplicate, as with Beam's sinks.
"""

import os
import uuid
from typing import Dict, Iterable, List, Tuple

import apache_beam as beam
import tensorflow as tf

STAGING = ".staging"


class _ReadRecords(beam.DoFn):
    def process(self, split_and_path: Tuple[str, str]) -> Iterable[Tuple[str, bytes]]:
        split, path = split_and_path
        for record in tf.data.TFRecordDataset(path, compression_type="GZIP" if path.endswith(".gz") else ""):
            yield split, record.numpy()


@beam.ptransform_fn
def ReadRecords(pipeline, patterns: Dict[str, str]):  # pylint: disable=invalid-name
    """``(split, record)`` for every record of the files matching each split's pattern,
    spread over the workers file by file."""
    files = [(split, path) for split, pattern in patterns.items() for path in sorted(tf.io.gfile.glob(pattern))]
    return (
        pipeline
        | "Files" >> beam.Create(files)
        | "Spread" >> beam.Reshuffle()
        | "Records" >> beam.ParDo(_ReadRecords())
    )


class BundleFiles:
    """The staging files of one bundle: a TFRecord file or a text file per destination."""

    def __init__(self, staging_dir: str):
        self._staging_dir = staging_dir
        self._writers: Dict[str, object] = {}
        self._paths: Dict[str, str] = {}

    def write(self, destination: str, data: bytes, lines: bool = False) -> None:
        writer = self._writers.get(destination)
        if writer is None:
            tf.io.gfile.makedirs(self._staging_dir)
            path = os.path.join(self._staging_dir, uuid.uuid4().hex)
            writer = tf.io.gfile.GFile(path, "wb") if lines else tf.io.TFRecordWriter(path)
            self._writers[destination], self._paths[destination] = writer, path
        writer.write(data + b"\n" if lines else data)

    def close(self) -> List[Tuple[str, str]]:
        """``(destination, staged file)`` for every file written."""
        for writer in self._writers.values():
            writer.close()
        staged = sorted(self._paths.items())
        self._writers, self._paths = {}, {}
        return staged


def commit_records(staged: List[str], prefix: str, suffix: str) -> None:
    """Moves finished bundles' record files to ``<prefix>-i-of-n<suffix>`` (one empty
    shard when there are none, so readers find the split)."""
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    if not staged:
        with tf.io.TFRecordWriter(f"{prefix}-00000-of-00001{suffix}"):
            return
    for index, path in enumerate(sorted(staged)):
        tf.io.gfile.rename(path, f"{prefix}-{index:05d}-of-{len(staged):05d}{suffix}", overwrite=True)


def commit_lines(staged: List[str], path: str) -> None:
    """Concatenates finished bundles' text files into ``path``."""
    with tf.io.gfile.GFile(path, "wb") as out:
        for part in sorted(staged):
            with tf.io.gfile.GFile(part, "rb") as f:
                out.write(f.read())


def remove_staging(directory: str) -> None:
    """Deletes what failed bundles may have left under ``directory``."""
    staging = os.path.join(directory, STAGING)
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
