"""The pusher's executor: its Do() pushes a blessed model and nothing else."""

import os
import shutil

import pytest
import tensorflow as tf
from tfx.types import standard_artifacts

from components import serving_signature
from components.model_pusher import executor as pusher_executor
from components.model_pusher import versioning


def _artifacts(tmp_path, saved_model, examples_file, blessed: bool):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "model")
    shutil.copytree(saved_model, os.path.join(model.uri, "Format-Serving"))
    blessing = standard_artifacts.ModelBlessing()
    blessing.uri = str(tmp_path / "blessing")
    blessing.set_int_custom_property("blessed", int(blessed))
    examples = standard_artifacts.Examples()
    examples.uri = str(tmp_path / "examples")
    examples.split_names = '["eval"]'
    os.makedirs(os.path.join(examples.uri, "Split-eval"))
    shutil.copy(examples_file, os.path.join(examples.uri, "Split-eval", "data.tfrecord.gz"))
    pushed = standard_artifacts.PushedModel()
    pushed.uri = str(tmp_path / "pushed")
    return {"model": [model], "model_blessing": [blessing], "examples": [examples]}, {"pushed_model": [pushed]}


@pytest.mark.parametrize("blessed", [True, False])
def test_the_executor_pushes_only_a_blessed_model(tmp_path, saved_model, examples_file, blessed):
    inputs, outputs = _artifacts(tmp_path, saved_model, examples_file, blessed)
    serving = str(tmp_path / "serving")
    properties = {"serving_base_dir": serving, "model_name": "clf", "keep_versions": 2,
                  "server_base_path": "", "smoke_split": "eval"}
    pusher_executor.Executor().Do(inputs, outputs, properties)
    pushed = outputs["pushed_model"][0]
    assert pushed.get_int_custom_property("pushed") == int(blessed)
    if blessed:
        assert pushed.get_string_custom_property("pushed_version") == "1"
        assert pushed.get_string_custom_property("pushed_destination") == os.path.join(serving, "clf", "1")
        assert tf.saved_model.load(os.path.join(serving, "clf", "1")).signatures[serving_signature.SERVING_DEFAULT]
        assert os.path.exists(os.path.join(serving, versioning.MODELS_CONFIG_FILE))
    else:
        assert not os.path.exists(serving)
