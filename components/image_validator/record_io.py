"""The validator's record files: read in batches, staged per bundle, committed once.

Reading goes through ``tf.data`` in batches (one Python step per batch, where
Beam's ``ReadFromTFRecord`` checksums every record with ``crcmod`` in Python).
Each bundle writes the examples it accepts to staging files of its own and
passes on only where each landed; at the end the staged files of the bundles
that finished are moved into place, once, so a retried bundle leaves no
duplicate, as with Beam's sinks.
"""

import os
import uuid
from collections.abc import Collection, Iterable

import tensorflow as tf

from components.example_records import compression_of_file

STAGING = ".staging"
Location = tuple[str, int]  # (staging file, record index)


def _dataset(path: str) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(path, compression_type=compression_of_file(path))


def read_batches(path: str, size: int) -> Iterable[list[bytes]]:
    """The records of a TFRecord file (gzipped when its name ends in .gz), ``size`` at a
    time, the next batch read on TensorFlow's threads meanwhile."""
    for batch in _dataset(path).batch(size).prefetch(1):
        yield list(batch.numpy())


class BundleFiles:
    """The staging files of one bundle: a TFRecord file per destination."""

    def __init__(self, staging_dir: str):
        self._staging_dir = staging_dir
        self._writers: dict[str, tf.io.TFRecordWriter] = {}
        self._paths: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def write(self, destination: str, record: bytes) -> Location:
        """Stages ``record``; returns where it landed."""
        if destination not in self._writers:
            tf.io.gfile.makedirs(self._staging_dir)
            self._paths[destination] = os.path.join(self._staging_dir, uuid.uuid4().hex)
            self._writers[destination] = tf.io.TFRecordWriter(self._paths[destination])
            self._counts[destination] = 0
        self._writers[destination].write(record)
        self._counts[destination] += 1
        return self._paths[destination], self._counts[destination] - 1

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers, self._paths, self._counts = {}, {}, {}


def read_staged(locations: Collection[Location]) -> dict[Location, bytes]:
    """The staged records at ``locations``."""
    wanted: dict[str, set] = {}
    for path, index in locations:
        wanted.setdefault(path, set()).add(index)
    found = {}
    for path, indices in wanted.items():
        for index, record in enumerate(_dataset(path)):
            if index in indices:
                found[(path, index)] = record.numpy()
    return found


def commit_records(written: Collection[Location], kept: Collection[Location], prefix: str, suffix: str) -> None:
    """Moves the staged files holding ``written`` records to ``<prefix>-i-of-n<suffix>``,
    keeping only the ``kept`` ones (a file that lost a record is rewritten without
    it); one empty shard when nothing is kept, so readers find the split."""
    tf.io.gfile.makedirs(os.path.dirname(prefix))
    kept = set(kept)
    files = sorted({path for path, _ in written})
    dropped = {path for path, index in written if (path, index) not in kept}
    kept_files = {path for path, _ in kept}
    files = [path for path in files if path in kept_files]
    if not files:
        with tf.io.TFRecordWriter(f"{prefix}-00000-of-00001{suffix}"):
            return
    for number, path in enumerate(files):
        destination = f"{prefix}-{number:05d}-of-{len(files):05d}{suffix}"
        if path not in dropped:
            tf.io.gfile.rename(path, destination, overwrite=True)
            continue
        with tf.io.TFRecordWriter(destination) as writer:
            for index, record in enumerate(_dataset(path)):
                if (path, index) in kept:
                    writer.write(record.numpy())


def remove_staging(directory: str) -> None:
    """Deletes what is left under ``directory``'s staging folder (dropped or failed bundles' files)."""
    staging = os.path.join(directory, STAGING)
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
