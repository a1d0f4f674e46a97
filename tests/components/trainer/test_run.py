"""run_fn end to end on tiny real data: with the GPU settings forced on over two CPU devices
(in a process of its own), then on this CPU's defaults, warm-starting from the first."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tfx.components.trainer.fn_args_utils import FnArgs

from components import serving_signature
from components.trainer import model as model_lib
from components.trainer import phases, run
from components.trainer.params import TrainParams
from tests.components.trainer.sample_params import TINY
from tests.helpers import REPO_ROOT, build_transform_output, encode_image

# Every test here uses forced_gpu_settings_run, which runs run_fn in a process of its own.
pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def transform_dir(tmp_path_factory) -> str:
    directory = str(tmp_path_factory.mktemp("transform_graph"))
    build_transform_output(("red", "red", "red", "green", "green", "blue"), directory)
    return directory


def _fn_args(tmp_path, examples_file, transform_dir, params: TrainParams, base_model=None) -> FnArgs:
    return FnArgs(
        train_files=[examples_file], eval_files=[examples_file],
        transform_output=transform_dir,
        serving_model_dir=str(tmp_path / "serving_model"), model_run_dir=str(tmp_path / "model_run"),
        custom_config=params.to_custom_config(), base_model=base_model,
    )


_TWO_CPU_DEVICES_RUN = """
import json, sys
import components  # noqa: F401  (the Keras choice, before TensorFlow loads)
import tensorflow as tf
# Two logical devices on the one CPU, set before TensorFlow initialises them.
tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
from tfx.components.trainer.fn_args_utils import FnArgs
from components.trainer import run
run.run_fn(FnArgs(**json.loads(sys.argv[1])))
"""


@pytest.fixture(scope="module")
def forced_gpu_settings_run(tmp_path_factory, examples_file, transform_dir) -> FnArgs:
    """run_fn with mixed precision and MirroredStrategy forced on, over two logical CPU devices:
    the code path a multi-GPU machine takes, on the CPU (in its own process, to split the CPU).
    One phase, fine-tuning the top of the backbone (each phase under the strategy costs most
    of a minute here); the CPU run below goes through both phases."""
    params = TrainParams(**{**TINY.to_custom_config(), "augment": TINY.augment, "head_epochs": 0,
                            "mixed_precision": "on", "distribution": "mirrored"})
    fn_args = _fn_args(tmp_path_factory.mktemp("forced"), examples_file, transform_dir, params)
    arguments = {name: getattr(fn_args, name) for name in (
        "train_files", "eval_files", "transform_output", "serving_model_dir", "model_run_dir", "custom_config")}
    subprocess.run([sys.executable, "-c", _TWO_CPU_DEVICES_RUN, json.dumps(arguments)], cwd=REPO_ROOT, check=True)
    return fn_args


def test_run_fn_trains_and_exports_with_gpu_settings_on_cpu_and_leaves_no_checkpoints(forced_gpu_settings_run):
    fn_args = forced_gpu_settings_run
    history = json.loads(pathlib.Path(fn_args.model_run_dir, run.HISTORY_FILE).read_text())
    assert [(e["phase"], e["epoch"]) for e in history["epochs"]] == [("finetune", 1)]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history["epochs"][0])
    assert "mixed_float16" in history["acceleration"] and "distribution=mirrored" in history["acceleration"]
    assert history["replicas"] == 2
    # Nothing a rerun or a warm start needs: no checkpoint stays behind to fill the disk.
    assert not tf.io.gfile.glob(os.path.join(fn_args.model_run_dir, "**", "*.index"))
    assert not tf.io.gfile.glob(os.path.join(fn_args.model_run_dir, "*checkpoint*"))
    loaded = tf.saved_model.load(fn_args.serving_model_dir)
    outputs = loaded.signatures[serving_signature.SERVING_DEFAULT](image_bytes=tf.constant([encode_image()]))
    assert outputs[serving_signature.PROBABILITIES].dtype == tf.float32
    np.testing.assert_allclose(outputs[serving_signature.PROBABILITIES].numpy().sum(), 1.0, atol=1e-3)
    assert serving_signature.read_labels(fn_args.serving_model_dir) == ["red", "green", "blue"]  # by frequency


def test_run_fn_on_cpu_defaults_warm_starts_from_the_base_model_then_trains_both_phases(
        tmp_path, examples_file, transform_dir, forced_gpu_settings_run, monkeypatch):
    """Auto settings on this CPU train in float32 with no strategy, starting from the base model:
    the head on the frozen backbone, then the top of the backbone."""
    first = forced_gpu_settings_run
    params = TrainParams(**{**TINY.to_custom_config(), "augment": TINY.augment, "warm_start": True,
                            "head_epochs": 1, "finetune_epochs": 1})
    second = _fn_args(tmp_path, examples_file, transform_dir, params, base_model=first.serving_model_dir)
    # The backbone's weights as phase 2 starts, i.e. after phase 1 (the real phases run).
    after_head = {}
    fine_tune = phases.fine_tune

    def fine_tune_after_looking(model, backbone, setup, pretrained):
        after_head.update({w.name: w.numpy() for w in backbone.weights})
        return fine_tune(model, backbone, setup, pretrained)

    monkeypatch.setattr(phases, "fine_tune", fine_tune_after_looking)
    run.run_fn(second)
    history = json.loads(pathlib.Path(second.model_run_dir, run.HISTORY_FILE).read_text())
    assert [(e["phase"], e["epoch"]) for e in history["epochs"]] == [("head", 1), ("finetune", 2)]
    if not tf.config.list_physical_devices("GPU"):
        assert "CPU only" in history["acceleration"] and "float32" in history["acceleration"]

    # Phase 1 trains the head only: after it the backbone is exactly the base model's.
    _, base_backbone, _ = model_lib.load_exported(first.serving_model_dir, params)
    base_weights = {w.name: w.numpy() for w in base_backbone.weights}
    head_weights = after_head
    assert base_weights.keys() == head_weights.keys() and len(base_weights) > 100
    for name, value in base_weights.items():
        np.testing.assert_array_equal(value, head_weights[name], err_msg=name)
    # Phase 2 then trains the top of the backbone.
    _, final_backbone, _ = model_lib.load_exported(second.serving_model_dir, params)
    changed = [w.name for w in final_backbone.weights if not np.array_equal(w.numpy(), base_weights[w.name])]
    assert changed and all(name.startswith("conv5_block3") for name in changed)
