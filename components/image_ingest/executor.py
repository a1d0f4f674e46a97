"""Beam executor that turns a folder of image files into references to them.

Runs through TFX's ``FileBasedExampleGen``: the base executor handles input
split folders, output shards and the payload format; this module says how a
split's folder becomes examples, and puts each file of an unsplit folder in a
hash bucket keyed by the seed and its relative path.

The folder is listed by the policy in ``image_folder.py``.  Each listed file
becomes one small example: its path relative to the data root, its label (the
class folder) and its size when listed.  The file is not opened here: the
image validator reads each file once, checks it and writes the examples the
rest of the pipeline trains on, so the run keeps one copy of the images, not
two.  The data root travels as a property of the Examples artifact
(``artifacts.DATA_ROOT_PROPERTY``).  Nothing is dropped: a link leaving the data folder is listed with
``features.OUTSIDE_LINK_ERROR`` (unless the listing follows such links), so
the report names it without anything ever reading what it points to.  An
unlabelled folder (the images to score after training) is listed the same way,
every file at any depth, with an empty label.  Paths and labels are escaped
names (``components/names.py``), so any name on disk fits in a UTF-8 feature.
What the listing left out (hidden entries, files outside class folders,
repeated folders) and the empty class folders are the component's second
output, an ``ImageFolderListing`` (``components/artifacts.py``).
"""

import bisect
import hashlib
import itertools
import posixpath
from typing import Any

import apache_beam as beam
import tensorflow as tf
from absl import logging
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

from components import artifacts, features, image_folder, names

LISTING_KEY = "listing"
SPLIT_SEED_KEY = "split_seed"
FOLLOW_OUTSIDE_LINKS_KEY = "follow_outside_links"
UNLABELLED_KEY = "unlabelled"
# What the examples are: 1, references to the files (not their bytes). A cached result of
# another kind is never reused.
REFERENCE_FORMAT_KEY = "reference_format"
REFERENCE_FORMAT = 1
_METRICS_NAMESPACE = "image_ingest"


def file_reference(relative_path: str, label: str, file_bytes: int, ingest_error: str = "") -> tf.train.Example:
    """The example of one listed file: where it is, its label and size (-1 when unknown),
    and why it will not be read ("" when it will)."""
    return tf.train.Example(features=tf.train.Features(feature={
        features.RELATIVE_PATH: tf.train.Feature(bytes_list=tf.train.BytesList(value=[relative_path.encode("utf-8")])),
        features.LABEL: tf.train.Feature(bytes_list=tf.train.BytesList(value=[label.encode("utf-8")])),
        features.FILE_BYTES: tf.train.Feature(int64_list=tf.train.Int64List(value=[file_bytes])),
        features.INGEST_ERROR: tf.train.Feature(bytes_list=tf.train.BytesList(value=[ingest_error.encode("utf-8")])),
    }))


class _ReferenceFile(beam.DoFn):
    """The reference of one listed file (its size from the file system, nothing read)."""

    def __init__(self, input_base: str, split_folder: str, unlabelled: bool = False):
        self._root = input_base.rstrip("/")
        self._split_folder = split_folder
        self._unlabelled = unlabelled
        self._files = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "files")

    def process(self, entry: tuple[str, bool]):
        relative_path, outside_link = entry
        label = "" if self._unlabelled else image_folder.class_of(relative_path, self._split_folder)
        self._files.inc()
        if outside_link:
            yield file_reference(relative_path, label, -1, features.OUTSIDE_LINK_ERROR)
            return
        try:
            size, _ = image_folder.size_and_mtime(posixpath.join(self._root, names.os_path(relative_path)))
        except (OSError, tf.errors.OpError):  # gone since the listing: the validator's read says why
            size = -1
        yield file_reference(relative_path, label, size)


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
        examples = artifact_utils.get_single_instance(output_dict[standard_component_specs.EXAMPLES_KEY])
        examples.set_string_custom_property(artifacts.DATA_ROOT_PROPERTY,
                                           exec_properties[standard_component_specs.INPUT_BASE_KEY])

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
                "Listing %d files in %d class folders under %s (%d hidden entries left out, "
                "%d links out of the data folder not read)",
                len(listing.files), len(listing.class_folders),
                posixpath.join(input_base, split_folder), len(listing.hidden), len(listing.outside_links),
            )
            entries = [(path, False) for path in listing.files] + [(path, True) for path in listing.outside_links]
            return (
                pipeline
                | "ListedFiles" >> beam.Create(entries)
                | "ToReference" >> beam.ParDo(_ReferenceFile(input_base, split_folder, unlabelled))
            )

        return image_files_to_examples
