"""Reading and writing the validator's record files in Beam, through TensorFlow's own readers and writers.

Beam's ``ReadFromTFRecord``/``WriteToTFRecord`` checksum every record with
``crcmod`` in Python's process, which cost the validator more than decoding a
small image; ``tf.io.TFRecordWriter`` and ``tf.data`` do the same in C++.  The
writes keep Beam's guarantee that a retried bundle leaves no duplicate: every
bundle writes its own file under a staging folder and passes its name on; only
the files of bundles that finished are moved into place, once, at the end.
"""

import os
import uuid
from typing import Iterable, List

import apache_beam as beam
import tensorflow as tf

_STAGING = ".staging"


class _ReadRecords(beam.DoFn):
    def __init__(self, compression: str):
        self._compression = compression

    def process(self, path: str) -> Iterable[bytes]:
        for record in tf.data.TFRecordDataset(path, compression_type=self._compression):
            yield record.numpy()


@beam.ptransform_fn
def ReadRecords(pipeline, pattern: str, compression: str = "GZIP"):  # pylint: disable=invalid-name
    """Every record of the files matching ``pattern``, spread over the workers file by file."""
    return (
        pipeline
        | "Files" >> beam.Create(sorted(tf.io.gfile.glob(pattern)))
        | "Spread" >> beam.Reshuffle()
        | "Records" >> beam.ParDo(_ReadRecords(compression))
    )


class _WriteBundles(beam.DoFn):
    """Writes each bundle's elements to a staging file of its own and emits the file's name."""

    def __init__(self, staging_dir: str, lines: bool):
        self._staging_dir, self._lines = staging_dir, lines
        self._writer = self._path = None

    def start_bundle(self):
        self._writer = self._path = None

    def process(self, element: bytes):
        if self._writer is None:
            tf.io.gfile.makedirs(self._staging_dir)
            self._path = os.path.join(self._staging_dir, uuid.uuid4().hex)
            self._writer = tf.io.gfile.GFile(self._path, "wb") if self._lines else tf.io.TFRecordWriter(self._path)
        self._writer.write(element + b"\n" if self._lines else element)

    def finish_bundle(self):
        if self._writer is not None:
            self._writer.close()
            yield beam.transforms.window.GlobalWindows.windowed_value(self._path)


def _commit(staged: List[str], prefix: str, suffix: str, single: bool) -> None:
    """Moves the finished bundles' files into place (one file concatenated, or numbered shards)."""
    staged = sorted(staged)
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    if single:
        with tf.io.gfile.GFile(prefix + suffix, "wb") as out:
            for path in staged:
                with tf.io.gfile.GFile(path, "rb") as f:
                    out.write(f.read())
        return
    if not staged:  # no records: one empty shard, so readers find the split
        with tf.io.TFRecordWriter(f"{prefix}-00000-of-00001{suffix}"):
            return
    for index, path in enumerate(staged):
        tf.io.gfile.rename(path, f"{prefix}-{index:05d}-of-{len(staged):05d}{suffix}", overwrite=True)


@beam.ptransform_fn
def WriteRecords(elements, prefix: str, suffix: str = "", lines: bool = False):  # pylint: disable=invalid-name
    """Writes ``elements`` (bytes) as TFRecord shards ``<prefix>-i-of-n<suffix>``, or with
    ``lines`` as one text file ``<prefix><suffix>``, one element a line.  The staging
    folder beside ``prefix`` is left for ``remove_staging``."""
    staging_dir = os.path.join(os.path.dirname(prefix), _STAGING, uuid.uuid4().hex)
    return (
        elements
        | "WriteBundles" >> beam.ParDo(_WriteBundles(staging_dir, lines))
        | "Staged" >> beam.combiners.ToList()
        | "Commit" >> beam.Map(_commit, prefix, suffix, lines)
    )


def remove_staging(directory: str) -> None:
    """Deletes what failed bundles may have left under ``directory``."""
    staging = os.path.join(directory, _STAGING)
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
