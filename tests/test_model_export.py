"""Model building, phase freezing, backbone weights and the exported SavedModel."""

import os

import numpy as np
import pytest
import tensorflow as tf

from components import features
from components.image_ingest.executor import image_to_example
from components.trainer import export, image_ops, model as model_lib, weights as weights_lib
from components.trainer.params import TrainParams
from tests.conftest import CLASS_COLOURS, encode_image

PARAMS = TrainParams(image_size=32, batch_size=4, weights="none")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, transform_output):
    """A randomly initialised model exported exactly as run_fn exports it."""
    tf.keras.utils.set_random_seed(1)
    model, _ = model_lib.build_model(3, PARAMS, weights=None)
    label_names = [v.decode() for v in transform_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    export_dir = str(tmp_path_factory.mktemp("export") / "serving_model")
    export.export_serving_model(model, transform_output, label_names, PARAMS.image_size, export_dir)
    return model, tf.saved_model.load(export_dir), label_names


def test_serving_default_takes_raw_bytes_and_matches_the_keras_model(exported):
    model, loaded, label_names = exported
    images = [
        encode_image((200, 30, 30), size=(50, 40), image_format="JPEG"),
        encode_image((30, 200, 30), size=(20, 60), image_format="PNG"),
        encode_image((30, 30, 200), size=(33, 33), image_format="GIF"),
        encode_image((90, 90, 90), size=(64, 48), image_format="PNG", mode="RGBA"),
    ]
    outputs = loaded.signatures[export.SERVING_DEFAULT](image_bytes=tf.constant(images))

    expected = model(tf.stack([image_ops.decode_and_resize(b, 32) for b in images]), training=False).numpy()
    np.testing.assert_allclose(outputs[export.PROBABILITIES].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(outputs[export.PROBABILITIES].numpy().sum(axis=1), 1.0, atol=1e-5)
    indices = outputs[export.CLASS_INDEX].numpy()
    np.testing.assert_array_equal(indices, expected.argmax(axis=1))
    assert [n.decode() for n in outputs[export.CLASS_NAME].numpy()] == [label_names[i] for i in indices]


def test_examples_signature_agrees_with_raw_bytes(exported):
    _, loaded, _ = exported
    data = [encode_image(colour, image_format="JPEG") for colour in CLASS_COLOURS.values()]
    serialized = [image_to_example(f"x/{i}.jpg", d).SerializeToString() for i, d in enumerate(data)]
    from_examples = loaded.signatures[export.SERVING_EXAMPLES](examples=tf.constant(serialized))
    from_bytes = loaded.signatures[export.SERVING_DEFAULT](image_bytes=tf.constant(data))
    np.testing.assert_allclose(
        from_examples[export.PROBABILITIES].numpy(), from_bytes[export.PROBABILITIES].numpy(), atol=1e-6
    )


def test_transform_features_signature_maps_labels_with_the_vocabulary(exported):
    _, loaded, label_names = exported
    serialized = [
        image_to_example(f"{name}/x.jpg", encode_image()).SerializeToString() for name in label_names + ["unseen"]
    ]
    label_ids = loaded.signatures[export.TRANSFORM_FEATURES](examples=tf.constant(serialized))[features.LABEL_ID]
    assert label_ids.numpy().reshape(-1).tolist() == [0, 1, 2, -1]


def test_serving_rejects_bytes_that_are_not_an_image(exported):
    _, loaded, _ = exported
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures[export.SERVING_DEFAULT](image_bytes=tf.constant([b"<html>not an image</html>"]))


def test_phases_freeze_and_unfreeze_the_backbone():
    model, backbone = model_lib.build_model(2, PARAMS, weights=None)
    model_lib.freeze_backbone(backbone)
    head_only = {w.name for w in model.trainable_weights}
    assert head_only and all("probabilities" in name for name in head_only)

    unfrozen = model_lib.unfreeze_top_layers(backbone, 10, keep_batchnorm_frozen=True)
    trainable_layers = [layer for layer in backbone.layers if layer.trainable]
    assert unfrozen == len(trainable_layers) and 0 < unfrozen <= 10
    assert not any(isinstance(layer, tf.keras.layers.BatchNormalization) for layer in trainable_layers)
    assert all(layer in backbone.layers[-10:] for layer in trainable_layers)

    everything = model_lib.unfreeze_top_layers(backbone, -1, keep_batchnorm_frozen=False)
    assert everything == len(backbone.layers)


def test_weights_none_and_missing_file():
    assert weights_lib.resolve_weights("none") is None
    assert weights_lib.resolve_weights("NONE") is None
    with pytest.raises(weights_lib.WeightsUnavailableError, match="does not exist"):
        weights_lib.resolve_weights("/no/such/weights.h5")


def test_weights_from_a_local_file_are_loaded(tmp_path):
    source, _ = model_lib.build_model(2, PARAMS, weights=None)
    backbone = source.get_layer(model_lib.BACKBONE_NAME)
    path = str(tmp_path / "backbone.h5")
    backbone.save_weights(path)
    assert weights_lib.resolve_weights(path) == path
    _, loaded_backbone = model_lib.build_model(2, PARAMS, weights=path)
    for expected, actual in zip(backbone.get_weights(), loaded_backbone.get_weights()):
        np.testing.assert_array_equal(expected, actual)


def test_imagenet_weights_come_from_the_keras_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    cached = weights_lib.keras_cache_path()
    assert cached == os.path.join(str(tmp_path / "keras"), "models", weights_lib.IMAGENET_NOTOP_FILE)
    os.makedirs(os.path.dirname(cached))
    model_lib.build_model(2, PARAMS, weights=None)[1].save_weights(cached)
    assert weights_lib.resolve_weights("imagenet") == weights_lib.IMAGENET


def test_imagenet_weights_offline_give_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "empty_keras_home"))

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -2] Name or service not known")  # what Keras raises offline

    monkeypatch.setattr(tf.keras.utils, "get_file", no_network)
    with pytest.raises(weights_lib.WeightsUnavailableError) as error:
        weights_lib.resolve_weights("imagenet")
    message = str(error.value)
    assert weights_lib.keras_cache_path() in message
    assert "--weights none" in message and weights_lib.IMAGENET_NOTOP_FILE in message
