"""tflite_export: the float32 twin of a mixed-precision model, TFLite's input quantization on
the caller's side, and the settings. (The conversions themselves, checked against the SavedModel
on real photos, are in tests/test_local_runner.py: each takes seconds.)"""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import model as model_lib
from components.trainer import tflite_export
from components.trainer.params import TrainParams
from tests.helpers import TINY_MODEL_PARAMS


def test_a_mixed_precision_model_gets_a_float32_twin_with_its_weights():
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed, _ = model_lib.build_model(3, TINY_MODEL_PARAMS, weights=None)
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    twin = tflite_export.float32_twin(mixed, lambda: model_lib.build_model(3, TINY_MODEL_PARAMS, weights=None)[0])

    assert twin is not mixed and tf.keras.mixed_precision.global_policy().name == previous.name
    assert all(layer.compute_dtype == "float32" for layer in twin.submodules
               if isinstance(layer, tf.keras.layers.Layer))
    for mine, theirs in zip(twin.get_weights(), mixed.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    images = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    np.testing.assert_allclose(twin(images, training=False), mixed(images, training=False), atol=0.02)
    # A float32 model is used as it is.
    assert tflite_export.float32_twin(twin, lambda: pytest.fail("no twin needed")) is twin


def test_as_uint8_rounds_and_clips_like_the_pixels_a_caller_sends():
    values = np.array([-3.0, 0.4, 0.6, 254.5, 300.0])
    assert tflite_export.as_uint8(values).tolist() == [0, 0, 1, 254, 255]  # half to even, as NumPy rounds


@pytest.mark.parametrize("value, kinds", [
    ("float16,int8", ("float16", "int8")), ("int8, float32", ("float32", "int8")), ("none", ()),
])
def test_tflite_setting_lists_the_models_float_first(value, kinds):
    assert TrainParams(tflite=value).tflite_kinds == kinds


@pytest.mark.parametrize("value", ["float16,float32", "int4", "int8,int8", ""])
def test_tflite_setting_refuses_what_it_cannot_make(value):
    with pytest.raises(ValueError, match="tflite must be"):
        TrainParams(tflite=value)
