"""Shared fixtures: small real image files, a real Transform output, real examples."""

import glob
import io
import os
import pathlib

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from components import features
from components.image_ingest.component import create_image_example_gen
from components.image_ingest.executor import (
    FOLLOW_OUTSIDE_LINKS_KEY,
    SPLIT_SEED_KEY,
    image_to_example,
)
from components.image_ingest.executor import (
    Executor as IngestExecutor,
)
from components.label_vocabulary.preprocessing import preprocessing_fn

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO_ROOT.parent / "shared" / "datasets" / "hymenoptera"
# Runner flags for a pipeline that trains in seconds, offline.
TINY_TRAINING_FLAGS = ["--image-size", "32", "--epochs", "1", "--batch-size", "8", "--weights", "none",
                       "--unfreeze-layers", "10"]


def encode_image(colour=(200, 30, 30), size=(40, 30), image_format="JPEG", mode="RGB") -> bytes:
    """Encoded bytes of a small image: a solid colour with a lighter square in one corner."""
    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:] = colour
    pixels[: height // 2, : width // 2] = np.minimum(np.array(colour) + 50, 255)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def encode_distinct_image(colour, seed: int, size=(40, 30), image_format="JPEG") -> bytes:
    """A small image of ``colour`` with a smooth random pattern of its own: images with
    other seeds are distinct photos to the validator, not near-copies."""
    rng = np.random.default_rng(seed)
    pattern = rng.integers(-60, 61, (3, 4, 3))
    coarse = np.clip(np.array(colour) + pattern, 0, 255).astype(np.uint8)
    image = Image.fromarray(coarse, "RGB").resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def write_image_folder(root: pathlib.Path, files: dict) -> pathlib.Path:
    """Writes ``{relative path: bytes}`` under ``root`` and returns ``root``."""
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


CLASS_COLOURS = {"red": (200, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 200)}


def build_transform_output(labels, output_dir: str) -> tft.TFTransformOutput:
    """Learns the label vocabulary over ``labels`` with tensorflow-transform on Beam,
    exactly as the Transform component does, and returns its output."""
    raw = [{features.LABEL: [label.encode()]} for label in labels]
    metadata = dataset_metadata.DatasetMetadata(
        schema_utils.schema_from_feature_spec({features.LABEL: tf.io.FixedLenFeature([1], tf.string)})
    )
    with tft_beam.Context(temp_dir=os.path.join(output_dir, "tmp")):
        transform_fn = (raw, metadata) | tft_beam.AnalyzeDataset(preprocessing_fn)
        _ = transform_fn | tft_beam.WriteTransformFn(output_dir)
    return tft.TFTransformOutput(output_dir)


@pytest.fixture(scope="session")
def transform_output(tmp_path_factory) -> tft.TFTransformOutput:
    """A real Transform graph over three labels ("red" the most frequent)."""
    labels = ("red", "red", "red", "green", "green", "blue")
    return build_transform_output(labels, str(tmp_path_factory.mktemp("transform_output")))


@pytest.fixture(scope="session")
def examples_file(tmp_path_factory) -> str:
    """A GZIP TFRecord of validated examples: 4 images per class, in several formats."""
    path = str(tmp_path_factory.mktemp("examples") / "data.tfrecord.gz")
    formats = ("JPEG", "PNG", "GIF", "BMP")
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for label, colour in CLASS_COLOURS.items():
            for number, image_format in enumerate(formats):
                data = encode_image(colour, size=(40 + 7 * number, 30 + 5 * number), image_format=image_format)
                relative = f"{label}/{number}.{image_format.lower()}"
                writer.write(image_to_example(relative, data).SerializeToString())
    return path


def run_ingest(data_dir, output_dir, return_artifact=False, beam_args=None, split_seed=0, follow_outside_links=False):
    """Calls the ingest executor's Do() as TFX would, with the component's own configs.

    Returns {split: [tf.Example]}, or the Examples artifact with ``return_artifact``."""
    component = create_image_example_gen(str(data_dir), split_seed=split_seed,
                                         follow_outside_links=follow_outside_links)
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    exec_properties = {
        standard_component_specs.INPUT_BASE_KEY: str(data_dir),
        # The component stores its input and output configs as JSON, as TFX passes them.
        standard_component_specs.INPUT_CONFIG_KEY: component.exec_properties[standard_component_specs.INPUT_CONFIG_KEY],
        standard_component_specs.OUTPUT_CONFIG_KEY: component.exec_properties[
            standard_component_specs.OUTPUT_CONFIG_KEY
        ],
        standard_component_specs.OUTPUT_DATA_FORMAT_KEY: example_gen_pb2.FORMAT_TF_EXAMPLE,
        standard_component_specs.OUTPUT_FILE_FORMAT_KEY: example_gen_pb2.FORMAT_TFRECORDS_GZIP,
        SPLIT_SEED_KEY: component.exec_properties[SPLIT_SEED_KEY],
        FOLLOW_OUTSIDE_LINKS_KEY: component.exec_properties[FOLLOW_OUTSIDE_LINKS_KEY],
    }
    context = IngestExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=os.path.join(str(output_dir), ".tmp"))
    IngestExecutor(context).Do({}, {standard_component_specs.EXAMPLES_KEY: [examples]}, exec_properties)
    if return_artifact:
        return examples
    result = {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        files = glob.glob(os.path.join(str(output_dir), f"Split-{split}", "*"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        result[split] = [tf.train.Example.FromString(r.numpy()) for r in records]
    return result
