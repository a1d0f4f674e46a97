"""The hardware plan (GPUs, mixed precision, XLA, distribution), its CPU fallback and the
precision policy restored after training."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from components.trainer import acceleration
from components.trainer.params import TrainParams


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


def test_hardware_settings_are_checked_once_in_the_train_params():
    for name, bad in (("distribution", "tpu"), ("mixed_precision", "yes"), ("xla", "maybe")):
        with pytest.raises(ValueError, match=f"{name} must be one of .*got '{bad}'"):
            TrainParams(weights="none", **{name: bad})


def test_this_machine_detects_its_devices():
    plan = acceleration.detect("auto", "auto", "none")
    assert plan.gpus == len(tf.config.list_physical_devices("GPU"))
    assert plan.mixed_precision == (plan.gpus > 0)
    assert plan.onednn and (plan.gpus or "CPU only (oneDNN kernels)" in plan.describe())


@pytest.mark.subprocess
@pytest.mark.parametrize("setting, expected", [(None, "True"), ("0", "False")])
def test_the_components_package_switches_onednn_on_unless_the_environment_says_no(setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    done = subprocess.run(
        [sys.executable, "-c", "import components\nfrom components.trainer import acceleration\n"
         "print(acceleration.onednn_enabled())"],
        env=env, capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == expected


def test_precision_policy_is_restored_after_training():
    mixed = acceleration.AccelerationPlan(distribution="none", mixed_precision=True, xla=False, gpus=0)
    with acceleration.precision_policy(mixed):
        assert tf.keras.mixed_precision.global_policy().name == "mixed_float16"
    assert tf.keras.mixed_precision.global_policy().name == "float32"
    assert acceleration.create_strategy(
        acceleration.plan("off", "off", "none", gpus=[])).num_replicas_in_sync == 1
