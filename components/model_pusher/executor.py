"""Executor of ServingPusher: TFX's blessing check, then a versioned, atomic push."""

import json
import os
from typing import Any

import tensorflow as tf
from tfx import types
from tfx.components.pusher import executor as tfx_pusher
from tfx.types import artifact_utils

from components import features
from components.example_records import compression_of
from components.model_pusher import smoke, versioning

SERVING_BASE_DIR = "serving_base_dir"
MODEL_NAME = "model_name"
KEEP_VERSIONS = "keep_versions"
SERVER_BASE_PATH = "server_base_path"
SMOKE_SPLIT = "smoke_split"
MODEL = "model"
MODEL_BLESSING = "model_blessing"
EXAMPLES = "examples"
PUSHED_MODEL = "pushed_model"
PUSH_RECORD = "push.json"


def first_image(examples: types.Artifact, split: str) -> bytes:
    """The image bytes of the first example of ``split``: a real image for the smoke test."""
    pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(pattern), compression_type=compression_of(pattern))
    for record in records.take(1):
        return tf.train.Example.FromString(record.numpy()).features.feature[features.IMAGE].bytes_list.value[0]
    raise ValueError(f"The {split} split of {examples.uri} has no example to smoke-test the model with.")


class Executor(tfx_pusher.Executor):
    """Pushes a blessed model as the next integer version under ``<serving_base>/<model_name>``."""

    def Do(self, input_dict: dict[str, list[types.Artifact]], output_dict: dict[str, list[types.Artifact]],
           exec_properties: dict[str, Any]) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        pushed_model = artifact_utils.get_single_instance(output_dict[PUSHED_MODEL])
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(pushed_model)
            return
        model = artifact_utils.get_single_instance(input_dict[MODEL])
        image = first_image(artifact_utils.get_single_instance(input_dict[EXAMPLES]), exec_properties[SMOKE_SPLIT])
        serving_base = exec_properties[SERVING_BASE_DIR]
        result = versioning.push(
            source_model=self.GetModelPath(input_dict),
            model_dir=os.path.join(serving_base, exec_properties[MODEL_NAME]),
            source_id=model.uri,
            keep_versions=exec_properties[KEEP_VERSIONS],
            smoke_test=lambda staged: smoke.smoke_test(staged, image),
        )
        config_path = versioning.write_models_config(serving_base, exec_properties.get(SERVER_BASE_PATH) or None)
        self._MarkPushed(pushed_model, pushed_destination=result.path, pushed_version=str(result.version))
        pushed_model.set_int_custom_property("already_serving", int(result.already_serving))
        record = {"version": result.version, "path": result.path, "already_serving": result.already_serving,
                  "removed_versions": result.removed_versions, "models_config": config_path, "source": model.uri}
        tf.io.gfile.makedirs(pushed_model.uri)
        with tf.io.gfile.GFile(os.path.join(pushed_model.uri, PUSH_RECORD), "w") as f:
            json.dump(record, f, indent=1)
