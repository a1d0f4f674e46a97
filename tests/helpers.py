"""What tests and benchmarks share: small real images and folders, a real Transform
output, and the ingest and validator executors called as TFX calls them."""

import glob
import io
import json
import os
import pathlib
from typing import NamedTuple

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
import tensorflow_transform.beam as tft_beam
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2
from tensorflow_transform.tf_metadata import dataset_metadata, schema_utils
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs

import components  # noqa: F401  (sets the Keras choice before TensorFlow loads)
from components import features
from components.artifacts import ImageFolderListing, ImageValidationReport
from components.image_ingest.component import create_image_example_gen, create_predict_example_gen
from components.image_ingest.executor import (
    FOLLOW_OUTSIDE_LINKS_KEY,
    LISTING_KEY,
    REFERENCE_FORMAT_KEY,
    SPLIT_SEED_KEY,
    UNLABELLED_KEY,
)
from components.image_ingest.executor import (
    Executor as IngestExecutor,
)
from components.image_validator import executor as validator
from components.image_validator import report as validation_report
from components.image_validator.policy import ValidationPolicy
from components.label_vocabulary.preprocessing import preprocessing_fn
from components.trainer.params import TrainParams

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
HYMENOPTERA = REPO_ROOT.parent / "shared" / "datasets" / "hymenoptera"
# Runner flags for a pipeline that trains in seconds, offline (and converts no TFLite model:
# seconds each; the demo run in tests/test_local_runner.py turns them on).
TINY_TRAINING_FLAGS = ["--image-size", "32", "--epochs", "1", "--batch-size", "8", "--weights", "none",
                       "--unfreeze-layers", "10", "--tflite", "none"]


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


# The tiny model the ``tiny_model`` fixture exports: 32 pixels, random weights.
TINY_MODEL_PARAMS = TrainParams(image_size=32, batch_size=4, weights="none")


class TinyModel(NamedTuple):
    keras_model: tf.keras.Model
    export_dir: str  # the SavedModel, as run_fn exports it
    labels: list


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


class IngestOutputs(NamedTuple):
    examples: standard_artifacts.Examples
    listing: ImageFolderListing


def run_ingest(data_dir, output_dir, return_artifact=False, beam_args=None, split_seed=0, follow_outside_links=False,
               unlabelled=False):
    """Calls the ingest executor's Do() as TFX would, with the component's own configs
    (``unlabelled``: PredictExampleGen's, for images to score).

    Returns {split: [tf.Example]}, or with ``return_artifact`` its outputs: the Examples
    and the ImageFolderListing artifacts."""
    component = (create_predict_example_gen(str(data_dir), follow_outside_links=follow_outside_links) if unlabelled
                 else create_image_example_gen(str(data_dir), split_seed=split_seed,
                                               follow_outside_links=follow_outside_links))
    examples = standard_artifacts.Examples()
    examples.uri = str(output_dir)
    listing = ImageFolderListing()
    listing.uri = os.path.join(str(output_dir), ".listing")
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
        UNLABELLED_KEY: component.exec_properties[UNLABELLED_KEY],
        REFERENCE_FORMAT_KEY: component.exec_properties[REFERENCE_FORMAT_KEY],
    }
    context = IngestExecutor.Context(beam_pipeline_args=beam_args, tmp_dir=os.path.join(str(output_dir), ".tmp"))
    outputs = {standard_component_specs.EXAMPLES_KEY: [examples], LISTING_KEY: [listing]}
    IngestExecutor(context).Do({}, outputs, exec_properties)
    if return_artifact:
        return IngestOutputs(examples, listing)
    result = {}
    for split in artifact_utils.decode_split_names(examples.split_names):
        files = glob.glob(os.path.join(str(output_dir), f"Split-{split}", "*"))
        records = tf.data.TFRecordDataset(files, compression_type="GZIP")
        result[split] = [tf.train.Example.FromString(r.numpy()) for r in records]
    return result


def run_validator(ingested: IngestOutputs, output_dir: pathlib.Path, policy=None, label_domain=None,
                  beam_args=None, seed=0):
    """Calls the validator executor's Do() as TFX would, on ``run_ingest``'s outputs;
    returns (validated Examples, report.json as a dict)."""
    policy = policy or ValidationPolicy()
    validated = standard_artifacts.Examples()
    validated.uri = str(output_dir / "validated")
    report = ImageValidationReport()
    report.uri = str(output_dir / "report")
    inputs = {validator.EXAMPLES_KEY: [ingested.examples], validator.LISTING_KEY: [ingested.listing]}
    if label_domain is not None:
        schema_dir = output_dir / "schema"
        schema_dir.mkdir(parents=True)
        schema = schema_pb2.Schema()
        schema.feature.add(name=features.LABEL, type=schema_pb2.BYTES).string_domain.value.extend(label_domain)
        (schema_dir / "schema.pbtxt").write_text(str(schema))
        schema_artifact = standard_artifacts.Schema()
        schema_artifact.uri = str(schema_dir)
        inputs[validator.SCHEMA_KEY] = [schema_artifact]
    outputs = {validator.VALIDATED_EXAMPLES_KEY: [validated], validator.REPORT_KEY: [report]}
    context = validator.Executor.Context(beam_pipeline_args=beam_args, tmp_dir=str(output_dir / "tmp"))
    validator.Executor(context).Do(inputs, outputs, {validator.POLICY_KEY: json.dumps(policy.to_dict()),
                                                    validator.SEED_KEY: seed})
    with open(os.path.join(report.uri, validation_report.REPORT_JSON), encoding="utf-8") as f:
        return validated, json.load(f)
