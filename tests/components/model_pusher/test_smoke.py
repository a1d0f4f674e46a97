"""The smoke test: the pushed model loads and classifies a real image."""

import shutil

import pytest
import tensorflow as tf

from components.model_pusher import smoke, versioning
from tests.helpers import encode_image


def test_the_smoke_test_loads_the_model_and_classifies_a_real_image(saved_model, tmp_path):
    smoke.smoke_test(saved_model, encode_image(image_format="PNG"))
    with pytest.raises(tf.errors.InvalidArgumentError):
        smoke.smoke_test(saved_model, b"not an image")
    broken = tmp_path / "broken"
    shutil.copytree(saved_model, broken)
    (broken / versioning.SAVED_MODEL_FILE).write_bytes(b"garbage")
    with pytest.raises(OSError, match="saved_model"):
        smoke.smoke_test(str(broken), encode_image())
