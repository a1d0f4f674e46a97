"""Fine-tuning: the hardware plan and its CPU fallback, schedules, class weights,
warm starts, and run_fn end to end on tiny real data."""

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
from components.trainer import acceleration, class_balance, phases, run
from components.trainer import model as model_lib
from components.trainer.params import AugmentParams, TrainParams
from tests.helpers import REPO_ROOT, build_transform_output, encode_image

TINY = TrainParams(
    image_size=32, batch_size=4, head_epochs=1, finetune_epochs=1, unfreeze_layers=5, weights="none",
    augment=AugmentParams.from_preset("light"), early_stopping_patience=1,
)


def test_cpu_plan_turns_every_accelerator_feature_off(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    plan = acceleration.plan("auto", "auto", "auto", gpus=[])
    assert plan == acceleration.AccelerationPlan(distribution="none", mixed_precision=False, xla=False, gpus=0)
    assert "CPU only" in plan.describe() and "float32" in plan.describe()


def test_gpu_plan_turns_mirrored_mixed_precision_and_xla_on(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    plan = acceleration.plan("auto", "auto", "auto", gpus=["/physical_device:GPU:0"])
    assert plan == acceleration.AccelerationPlan(distribution="mirrored", mixed_precision=True, xla=True, gpus=1)
    assert acceleration.plan("off", "off", "none", gpus=["gpu"]).describe().endswith(
        "distribution=none, mixed_precision=float32, xla=off")


def test_multi_worker_tf_config_picks_the_multi_worker_strategy(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:2222", "b:2222"]}, "task": {"type": "worker", "index": 0}}))
    assert acceleration.plan("auto", "auto", "auto", gpus=[]).distribution == "multi_worker"
    with pytest.raises(ValueError, match="distribution"):
        acceleration.plan("auto", "auto", "tpu", gpus=[])


def test_this_machine_detects_its_devices():
    plan = acceleration.detect("auto", "auto", "none")
    assert plan.gpus == len(tf.config.list_physical_devices("GPU"))
    assert plan.mixed_precision == (plan.gpus > 0)


def test_cosine_schedule_warms_up_then_decays():
    schedule = phases.learning_rate(1e-3, 100, TINY)
    rates = [float(schedule(step)) for step in (0, 5, 10, 50, 99)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4) and rates[2] == pytest.approx(1e-3)
    assert rates[2] > rates[3] > rates[4] > 0
    assert phases.learning_rate(1e-3, 100, TrainParams(lr_schedule="constant", weights="none")) == 1e-3


def test_balanced_class_weights_equalise_each_classes_total():
    weights = class_balance.balanced_class_weights({"a": 30, "b": 10, "c": 20}, ["a", "b", "c"])
    assert weights == pytest.approx([60 / 90, 60 / 30, 60 / 60])
    assert [w * n for w, n in zip(weights, (30, 10, 20))] == pytest.approx([20, 20, 20])
    assert class_balance.balanced_class_weights({"a": 3}, ["a", "b"]) == pytest.approx([0.5, 0.0])


def test_class_counts_read_the_labels_of_example_files(examples_file):
    assert class_balance.class_counts(examples_file) == {"red": 4, "green": 4, "blue": 4}


@pytest.fixture(scope="module")
def exported_base(tiny_model):
    assert tiny_model.keras_model.input_shape[1] == TINY.image_size
    return tiny_model.keras_model, tiny_model.export_dir, tiny_model.labels


def test_warm_start_copies_backbone_and_head_when_the_classes_match(exported_base):
    base, base_dir, labels = exported_base
    tf.keras.utils.set_random_seed(2)
    fresh, _ = model_lib.build_model(3, TINY, weights=None)
    assert not np.allclose(fresh.get_weights()[0], base.get_weights()[0])
    assert model_lib.warm_start(fresh, base_dir, labels, TINY) == "backbone and head"
    for expected, actual in zip(base.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(expected, actual)


def test_warm_start_keeps_only_the_backbone_when_the_classes_change(exported_base):
    base, base_dir, labels = exported_base
    tf.keras.utils.set_random_seed(3)
    fresh, _ = model_lib.build_model(2, TINY, weights=None)
    head_before = fresh.get_layer("probabilities").get_weights()
    assert "backbone only" in model_lib.warm_start(fresh, base_dir, labels[:2], TINY)
    for expected, actual in zip(base.get_layer(model_lib.BACKBONE_NAME).get_weights(),
                                fresh.get_layer(model_lib.BACKBONE_NAME).get_weights()):
        np.testing.assert_array_equal(expected, actual)
    for before, after in zip(head_before, fresh.get_layer("probabilities").get_weights()):
        np.testing.assert_array_equal(before, after)


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
    the code path a multi-GPU machine takes, on the CPU (in its own process, to split the CPU)."""
    params = TrainParams(**{**TINY.to_custom_config(), "augment": TINY.augment,
                            "mixed_precision": "on", "distribution": "mirrored"})
    fn_args = _fn_args(tmp_path_factory.mktemp("forced"), examples_file, transform_dir, params)
    arguments = {name: getattr(fn_args, name) for name in (
        "train_files", "eval_files", "transform_output", "serving_model_dir", "model_run_dir", "custom_config")}
    subprocess.run([sys.executable, "-c", _TWO_CPU_DEVICES_RUN, json.dumps(arguments)], cwd=REPO_ROOT, check=True)
    return fn_args


def test_run_fn_trains_checkpoints_and_exports_with_gpu_settings_on_cpu(forced_gpu_settings_run):
    fn_args = forced_gpu_settings_run
    history = json.loads(pathlib.Path(fn_args.model_run_dir, run.HISTORY_FILE).read_text())
    assert [(e["phase"], e["epoch"]) for e in history["epochs"]] == [("head", 1), ("finetune", 2)]
    assert {"loss", "val_loss", "accuracy", "val_accuracy"} <= set(history["epochs"][0])
    assert "mixed_float16" in history["acceleration"] and "distribution=mirrored" in history["acceleration"]
    assert history["replicas"] == 2
    for phase in ("head", "finetune"):
        assert tf.io.gfile.glob(os.path.join(fn_args.model_run_dir, phases.CHECKPOINT_DIR, phase, "best*"))
    loaded = tf.saved_model.load(fn_args.serving_model_dir)
    outputs = loaded.signatures[serving_signature.SERVING_DEFAULT](image_bytes=tf.constant([encode_image()]))
    assert outputs[serving_signature.PROBABILITIES].dtype == tf.float32
    np.testing.assert_allclose(outputs[serving_signature.PROBABILITIES].numpy().sum(), 1.0, atol=1e-3)
    assert serving_signature.read_labels(fn_args.serving_model_dir) == ["red", "green", "blue"]  # by frequency


def test_run_fn_on_cpu_defaults_warm_starts_from_the_base_model(
        tmp_path, examples_file, transform_dir, forced_gpu_settings_run):
    """Auto settings on this CPU train in float32 with no strategy, starting from the base model."""
    first = forced_gpu_settings_run
    params = TrainParams(**{**TINY.to_custom_config(), "augment": TINY.augment, "warm_start": True,
                            "head_epochs": 1, "finetune_epochs": 0})
    second = _fn_args(tmp_path, examples_file, transform_dir, params, base_model=first.serving_model_dir)
    run.run_fn(second)
    history = json.loads(pathlib.Path(second.model_run_dir, run.HISTORY_FILE).read_text())
    if not tf.config.list_physical_devices("GPU"):
        assert "CPU only" in history["acceleration"] and "float32" in history["acceleration"]
    base = tf.saved_model.load(first.serving_model_dir)
    warm = tf.saved_model.load(second.serving_model_dir)
    # Phase 1 trains the head only: a warm start leaves the backbone exactly as the base model's.
    def backbone_variables(model):
        return {v.name: v.numpy() for v in model.variables if "probabilities" not in v.name}
    base_vars, warm_vars = backbone_variables(base), backbone_variables(warm)
    assert base_vars.keys() == warm_vars.keys() and len(base_vars) > 100
    for name in base_vars:
        np.testing.assert_array_equal(base_vars[name], warm_vars[name], err_msg=name)


def test_precision_policy_is_restored_after_training():
    mixed = acceleration.AccelerationPlan(distribution="none", mixed_precision=True, xla=False, gpus=0)
    with acceleration.precision_policy(mixed):
        assert tf.keras.mixed_precision.global_policy().name == "mixed_float16"
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert acceleration.create_strategy(
        acceleration.plan("off", "off", "none", gpus=[])).num_replicas_in_sync == 1
