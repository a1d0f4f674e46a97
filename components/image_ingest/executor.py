"""Beam executor that turns image files into ``tf.Example`` records.

Runs through TFX's ``FileBasedExampleGen``: the base executor handles splits
(input folders or hash buckets), output shards and the payload format; this
module only says how a split pattern becomes examples.

Each file becomes one example holding its encoded bytes (pixels are never
decoded here), its label (the parent folder), its path relative to the data
root, and what its header says: format, height, width, channels.  A file whose
header cannot be read is still written, with format ``unknown`` and zero sizes,
so no file is lost: the schema's format domain makes ExampleValidator report it.
"""

import hashlib
import io
import posixpath
from typing import Any, Dict, Tuple

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.io import fileio
from PIL import Image
from tfx.components.example_gen.base_example_gen_executor import BaseExampleGenExecutor
from tfx.types import standard_component_specs

from components import features

_METRICS_NAMESPACE = "image_ingest"


def read_header(data: bytes) -> Tuple[str, int, int, int]:
    """Returns (format, height, width, channels) from the image header only.

    Pillow's ``open`` parses the header lazily and does not decode pixels.
    Anything it cannot parse is reported as the unknown format.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return (image.format or features.UNKNOWN_FORMAT).lower(), height, width, len(image.getbands())
    except Exception:  # noqa: BLE001 - any parse failure means "not a readable image"
        return features.UNKNOWN_FORMAT, 0, 0, 0


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))


def image_to_example(relative_path: str, data: bytes) -> tf.train.Example:
    """Builds the example for one file; ``relative_path`` is ``[split/]class/file``."""
    image_format, height, width, channels = read_header(data)
    label = posixpath.basename(posixpath.dirname(relative_path))
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
            }
        )
    )


class _ReadImageExample(beam.DoFn):
    """Reads one matched file and emits its example."""

    def __init__(self, input_base: str):
        self._root = input_base.rstrip("/") + "/"
        self._files = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "files")
        self._unknown = beam.metrics.Metrics.counter(_METRICS_NAMESPACE, "unknown_format")

    def process(self, readable_file: fileio.ReadableFile):
        path = readable_file.metadata.path
        if not path.startswith(self._root):
            raise ValueError(f"Matched file {path} is outside the data root {self._root}")
        example = image_to_example(path[len(self._root):], readable_file.read())
        self._files.inc()
        if example.features.feature[features.FORMAT].bytes_list.value[0] == b"unknown":
            self._unknown.inc()
            logging.warning("Not a readable image (kept, format 'unknown'): %s", path)
        yield example


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _ImageFilesToExample(  # pylint: disable=invalid-name
    pipeline: beam.Pipeline, exec_properties: Dict[str, Any], split_pattern: str
) -> beam.pvalue.PCollection:
    """Matches ``<input_base>/<split_pattern>`` and reads every file into an example."""
    input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
    pattern = posixpath.join(input_base, split_pattern)
    logging.info("Ingesting images matching %s", pattern)
    return (
        pipeline
        | "MatchFiles" >> fileio.MatchFiles(pattern)
        | "ReadMatches" >> fileio.ReadMatches()
        # Spread the reads: a match yields files in folder order.
        | "Reshuffle" >> beam.Reshuffle()
        | "ToExample" >> beam.ParDo(_ReadImageExample(input_base))
    )


class Executor(BaseExampleGenExecutor):
    """ExampleGen executor for ``<root>/[<split>/]<class>/<file>`` image folders."""

    def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
        return _ImageFilesToExample
