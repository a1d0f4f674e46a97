"""Beam executor that turns image files into ``tf.Example`` records.

Runs through TFX's ``FileBasedExampleGen``: the base executor handles input
split folders, output shards and the payload format; this module says how a
split's folder becomes examples, and puts each file of an unsplit folder in a
hash bucket keyed by the seed and its relative path.

The folder is listed by the policy in ``listing.py``.  Each listed file becomes
one example holding its encoded bytes (pixels are never decoded here), its label
(the class folder), its path relative to the data root, and what its header
says: format, height, width, channels.  Nothing is dropped: a file that cannot
be read becomes an example with empty bytes and the error in ``ingest_error``;
one whose header cannot be parsed gets format ``unknown``; a link leaving the
data folder is not read at all (unless the listing follows such links) and gets
``features.OUTSIDE_LINK_ERROR``.  An unlabelled folder (the images to score
after training) is read the same way, every file at any depth, with an empty
label.  Paths and labels are escaped names
(``components/names.py``), so any name on disk fits in a UTF-8 feature.  What
the listing left out (hidden entries, files outside class folders, repeated
folders) and the empty class folders are the component's second output, an
``ImageFolderListing`` (``components/artifacts.py``).
"""

import bisect
import hashlib
import itertools
import posixpath
from typing import Any, Optional

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystems import FileSystems
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import artifacts, features, image_bytes, image_folder, names

LISTING_KEY = "listing"
SPLIT_SEED_KEY = "split_seed"
FOLLOW_OUTSIDE_LINKS_KEY = "follow_outside_links"
UNLABELLED_KEY = "unlabelled"
_METRICS_NAMESPACE = "image_ingest"


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def image_to_example(relative_path: str, data: bytes, label: Optional[str] = None,
                     ingest_error: str = "") -> tf.train.Example:
    """Builds the example for one file.

    ``label`` defaults to the file's parent folder ("" for an unlabelled image);
    ``ingest_error`` says why ``data`` is empty when the file could not be read.
    """
    image_format, height, width, channels = image_bytes.read_header(data)
    label = posixpath.basename(posixpath.dirname(relative_path)) if label is None else label
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                features.IMAGE: _bytes_feature(data),
                features.LABEL: _bytes_feature(label.encode("utf-8")),
                features.RELATIVE_PATH: _bytes_feature(relative_path.encode("utf-8")),
                features.FORMAT: _bytes_feature(image_format.encode("utf-8")),
                features.HEIGHT: _int_feature(height),
                features.WIDTH: _int_feature(width),
                features.CHANNELS: _int_feature(channels),
                features.SHA256: _bytes_feature(hashlib.sha256(data).hexdigest().encode("ascii")),
                features.INGEST_ERROR: _bytes_feature(ingest_error.encode("utf-8")),
            }
        )
    )


class _ReadImageExample(beam.DoFn):
    """Reads one listed file and emits its example, whatever the file holds."""

    def __init__(self, input_base: str, split_folder: str, unlabelled: bool = False):
        self._root = input_base.rstrip("/")
        self._split_folder = split_folder
        self._unlabelled = unlabelled
        self._files = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "files")
        self._unreadable = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "unreadable")

    def process(self, entry: tuple[str, bool]):
        relative_path, outside_link = entry
        label = "" if self._unlabelled else image_folder.class_of(relative_path, self._split_folder)
        self._files.inc()
        if outside_link:
            yield image_to_example(relative_path, b"", label=label, ingest_error=features.OUTSIDE_LINK_ERROR)
            return
        path = posixpath.join(self._root, names.os_path(relative_path))
        try:
            with FileSystems.open(path, mime_type="application/octet-stream", compression_type="uncompressed") as f:
                data, error = f.read(), ""
        except OSError as read_error:  # permission denied, broken link, vanished file...
            # strerror, not str(): the message names the path, which may not be UTF-8.
            data, error = b"", names.escape(f"{type(read_error).__name__}: {read_error.strerror or read_error}")
            self._unreadable.inc()
            logging.warning("Cannot read %s (kept for the report): %s", relative_path, error)
        yield image_to_example(relative_path, data, label=label, ingest_error=error)


def hash_split(example: tf.train.Example, num_splits: int, bucket_ends: list[int], seed: int) -> int:
    """The split of ``example``: its bucket, a hash of ``seed`` and its relative path,
    among ``bucket_ends`` (the cumulative bucket counts of the splits)."""
    assert num_splits == len(bucket_ends)
    path = example.features.feature[features.RELATIVE_PATH].bytes_list.value[0]
    bucket = int(hashlib.sha256(f"{seed}\0".encode() + path).hexdigest(), 16) % bucket_ends[-1]
    return bisect.bisect(bucket_ends, bucket)


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for ``<root>/[<split>/]<class>/.../<file>`` image folders."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._listings: dict[str, dict[str, list[str]]] = {}
        super().Do(input_dict, output_dict, exec_properties)
        artifacts.write_listing(artifact_utils.get_single_instance(output_dict[LISTING_KEY]), self._listings)

    def GenerateExamplesByBeam(self, pipeline, exec_properties: dict[str, Any]) -> dict[str, beam.PCollection]:
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        if not output_config.split_config.splits:
            return super().GenerateExamplesByBeam(pipeline, exec_properties)  # split folders, kept as they are
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        (single_input,) = input_config.splits
        bucket_ends = list(itertools.accumulate(split.hash_buckets for split in output_config.split_config.splits))
        splits = (
            pipeline
            | "InputToRecord" >> self.GetInputSourceToExamplePTransform()(exec_properties, single_input.pattern)
            | "SplitData" >> beam.Partition(hash_split, len(bucket_ends), bucket_ends,
                                            exec_properties.get(SPLIT_SEED_KEY) or 0)
        )
        names = example_gen_utils.generate_output_split_names(input_config, output_config)
        return dict(zip(names, splits))

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        @beam.ptransform_fn
        @beam.typehints.with_input_types(beam.Pipeline)
        @beam.typehints.with_output_types(tf.train.Example)
        def image_files_to_examples(pipeline, exec_properties: dict[str, Any], split_pattern: str):
            input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
            split_folder = image_folder.split_folder_of(split_pattern)
            listing = image_folder.list_split(
                input_base, split_folder, bool(exec_properties.get(FOLLOW_OUTSIDE_LINKS_KEY))
            )
            unlabelled = bool(exec_properties.get(UNLABELLED_KEY))
            if unlabelled:
                listing = image_folder.unlabelled(listing)
            self._listings[split_folder or "."] = listing.to_json()
            logging.info(
                "Ingesting %d files in %d class folders under %s (%d hidden entries left out, "
                "%d links out of the data folder not read)",
                len(listing.files), len(listing.class_folders),
                posixpath.join(input_base, split_folder), len(listing.hidden), len(listing.outside_links),
            )
            entries = [(path, False) for path in listing.files] + [(path, True) for path in listing.outside_links]
            return (
                pipeline
                | "ListedFiles" >> beam.Create(entries)
                # Spread the reads over workers: the listing is in folder order.
                | "Reshuffle" >> beam.Reshuffle()
                | "ToExample" >> beam.ParDo(_ReadImageExample(input_base, split_folder, unlabelled))
            )

        return image_files_to_examples
