"""Backbone weights: none, a local file, ImageNet's from the Keras cache, and the message offline."""

import os

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import model as model_lib
from components.trainer import weights as weights_lib
from tests.helpers import TINY_MODEL_PARAMS as PARAMS


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
