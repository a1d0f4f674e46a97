"""Session fixtures: a real Transform output, a record file of real examples and
one tiny exported model (the helpers they are built with live in ``tests/helpers.py``)."""

import os

# Under pytest-xdist the workers share the machine's cores: each TensorFlow gets its share
# of threads instead of one per core each (set before TensorFlow loads; subprocesses inherit it).
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _share = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", _share)
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", _share)

# Before TensorFlow loads, so the tests run with the product's choices (tf-keras, oneDNN).
import components  # noqa: F401, I001

import pytest
import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.example_records import image_to_example
from components.trainer import export
from components.trainer import model as model_lib
from tests.helpers import CLASS_COLOURS, TINY_MODEL_PARAMS, TinyModel, build_transform_output, encode_image

# The slow kinds of test (pyproject.toml's markers), slowest first.
SLOW_MARKERS = ("e2e", "subprocess", "install")


def pytest_collection_modifyitems(items):
    """Modules holding the slow kinds run first, the end-to-end runs before the rest: under
    pytest-xdist (``--dist loadfile`` hands out test files in this order) the short tests
    then fill in on the other worker, instead of a long run starting last and finishing
    alone.  Each module's tests stay together, in their own order, for its module fixtures."""
    def rank(item) -> int:
        return next((i for i, name in enumerate(SLOW_MARKERS) if item.get_closest_marker(name)), len(SLOW_MARKERS))

    module_rank: dict = {}
    for item in items:
        module_rank[item.path] = min(module_rank.get(item.path, len(SLOW_MARKERS)), rank(item))
    items.sort(key=lambda item: module_rank[item.path])


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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, transform_output) -> TinyModel:
    """A randomly initialised 32-pixel model over ``transform_output``'s labels, exported
    exactly as run_fn exports it: one for every test that needs a SavedModel (building
    and exporting one costs more than most tests).  Exported mid fine-tuning (the top of
    its backbone unfrozen), as run_fn exports: Keras lists trainable weights first, and the
    warm-start tests check the export's order does not depend on it."""
    tf.keras.utils.set_random_seed(1)
    labels = [v.decode() for v in transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    model, backbone = model_lib.build_model(len(labels), TINY_MODEL_PARAMS, weights=None)
    model_lib.freeze_backbone(backbone)
    model_lib.unfreeze_top_layers(backbone, 7, keep_batchnorm_frozen=True)
    export_dir = str(tmp_path_factory.mktemp("tiny_model") / "serving_model")
    export.export_serving_model(model, transform_output, labels, TINY_MODEL_PARAMS.image_size, export_dir)
    return TinyModel(model, export_dir, labels)

