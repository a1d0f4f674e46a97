"""The model: phase freezing of the backbone, and warm starts from an exported model."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow.python.autograph.impl import conversion

from components.trainer import model as model_lib
from tests.components.trainer.sample_params import TINY
from tests.helpers import TINY_MODEL_PARAMS as PARAMS


def test_autograph_leaves_keras_own_code_as_written_and_converts_ours():
    assert conversion.is_allowlisted(tf.keras.layers.Dense(1).__call__)
    assert conversion.is_allowlisted(tf.keras.Model.train_step)
    assert not conversion.is_allowlisted(model_lib.preprocess)


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


def _by_name(layer) -> dict:
    """A model's or layer's weights by name (Keras lists trainable ones first: the base is mid fine-tuning)."""
    return {weight.name: weight.numpy() for weight in layer.weights}


def _assert_same_weights(expected, actual) -> None:
    expected, actual = _by_name(expected), _by_name(actual)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(value, actual[name], err_msg=name)


@pytest.fixture(scope="module")
def exported_base(tiny_model):
    assert tiny_model.keras_model.input_shape[1] == TINY.image_size
    return tiny_model.keras_model, tiny_model.export_dir, tiny_model.labels


def test_warm_start_copies_backbone_and_head_when_the_classes_match(exported_base):
    base, base_dir, labels = exported_base
    tf.keras.utils.set_random_seed(2)
    fresh, _ = model_lib.build_model(3, TINY, weights=None)
    assert not np.allclose(_by_name(fresh)["conv1_conv/kernel:0"], _by_name(base)["conv1_conv/kernel:0"])
    assert model_lib.warm_start(fresh, base_dir, labels, TINY) == "backbone and head"
    _assert_same_weights(base, fresh)


def test_warm_start_keeps_only_the_backbone_when_the_classes_change(exported_base):
    base, base_dir, labels = exported_base
    tf.keras.utils.set_random_seed(3)
    fresh, _ = model_lib.build_model(2, TINY, weights=None)
    head_before = fresh.get_layer("probabilities").get_weights()
    assert "backbone only" in model_lib.warm_start(fresh, base_dir, labels[:2], TINY)
    _assert_same_weights(base.get_layer(model_lib.BACKBONE_NAME), fresh.get_layer(model_lib.BACKBONE_NAME))
    for before, after in zip(head_before, fresh.get_layer("probabilities").get_weights()):
        np.testing.assert_array_equal(before, after)


def test_warm_start_reads_a_model_exported_as_a_keras_savedmodel(tiny_model, tmp_path):
    """Versions pushed before the export became a plain module hold the Keras object graph."""
    base = tiny_model.keras_model
    old = tmp_path / "old"
    tf.train.Checkpoint(root=base).write(str(old / "variables" / "variables"))  # a Keras SavedModel's layout
    (old / "assets").mkdir()
    (old / "assets" / "labels.txt").write_text("".join(name + "\n" for name in tiny_model.labels))
    tf.keras.utils.set_random_seed(5)
    fresh, _ = model_lib.build_model(3, TINY, weights=None)
    assert model_lib.warm_start(fresh, str(old), tiny_model.labels, TINY) == "backbone and head"
    _assert_same_weights(base, fresh)
