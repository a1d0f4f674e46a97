"""The validator's record files: read in batches, staged per bundle, written once as
shards in a seeded, shuffled order.

Reading goes through ``tf.data`` in batches (one Python step per batch, where
Beam's ``ReadFromTFRecord`` checksums every record with ``crcmod`` in Python).

Each accepted example has a place fixed by the seed and its path alone
(``placement``): one of the split's shards, and a rank within it.  The shard
count follows the split's bytes (``shard_count``), so each shard holds a random
share of the split whatever order the files were listed in (folder order is
class order), and no shard outgrows what one worker sorts in memory.  While
inspecting, each bundle stages the examples it accepts in files of its own, one
per shard, and passes on only where each landed; once the copies are decided,
each shard is written from its staged pieces in rank order (``write_shard``),
so a retried bundle leaves no duplicate, as with Beam's sinks.
"""

import hashlib
import math
import os
import uuid
from collections.abc import Collection, Iterable

import tensorflow as tf

from components.example_records import compression_of_file

STAGING = ".staging"
# Bytes of examples per shard: several shards for a split of some size, each sorted in memory.
TARGET_SHARD_BYTES = 64 << 20
Location = tuple[str, int]  # (staging file, record index)


def _dataset(path: str) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(path, compression_type=compression_of_file(path))


def read_batches(path: str, size: int) -> Iterable[list[bytes]]:
    """The records of a TFRecord file (gzipped when its name ends in .gz), ``size`` at a
    time, the next batch read on TensorFlow's threads meanwhile."""
    for batch in _dataset(path).batch(size).prefetch(1):
        yield list(batch.numpy())


def shard_count(split_bytes: int) -> int:
    """Shards for a split of ``split_bytes``: enough that none holds more than about ``TARGET_SHARD_BYTES``."""
    return max(1, math.ceil(split_bytes / TARGET_SHARD_BYTES))


def placement(seed: int, path: str, shards: int) -> tuple[int, int]:
    """Where an example goes: (shard, rank within the shard), from a hash of the seed and its
    path, so the order is the same for a seed and has nothing to do with the listing's."""
    # 63 bits: Beam encodes the rank as a signed 64-bit integer.
    key = int.from_bytes(hashlib.sha256(f"{seed}\0{path}".encode()).digest()[:8], "big") >> 1
    return key % shards, key // shards


def shard_name(prefix: str, shard: int, shards: int, suffix: str = ".tfrecord") -> str:
    return f"{prefix}-{shard:05d}-of-{shards:05d}{suffix}"


class BundleFiles:
    """The staging files of one bundle: a TFRecord file per destination."""

    def __init__(self, staging_dir: str):
        self._staging_dir = staging_dir
        self._writers: dict[object, tf.io.TFRecordWriter] = {}
        self._paths: dict[object, str] = {}
        self._counts: dict[object, int] = {}

    def write(self, destination, record: bytes) -> Location:
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


def write_shard(destination: str, kept: Collection[tuple[int, str, int]]) -> int:
    """Writes the staged records ``kept`` ((rank, staging file, index) each) to ``destination``
    in rank order; returns how many.  Holds one shard's records in memory."""
    ranks = {(path, index): rank for rank, path, index in kept}
    records = sorted((ranks[location], record) for location, record in read_staged(ranks).items())
    tf.io.gfile.makedirs(os.path.dirname(destination))
    with tf.io.TFRecordWriter(destination) as writer:
        for _, record in records:
            writer.write(record)
    return len(records)


def remove_staging(directory: str) -> None:
    """Deletes what is left under ``directory``'s staging folder (staged pieces, dropped or failed bundles' files)."""
    staging = os.path.join(directory, STAGING)
    if tf.io.gfile.exists(staging):
        tf.io.gfile.rmtree(staging)
