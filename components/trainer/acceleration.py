"""How training uses the hardware: distribution strategy, mixed precision, XLA.

Each setting is ``auto`` by default: on when a GPU is present, off on a CPU
(where float16 and XLA-compiled Keras steps are slower, not faster).  On a CPU
the plan also says whether TensorFlow's oneDNN kernels are on (``components``
switches them on; without them training is several times slower).  The plan
is a pure function of the settings and the devices, so the CPU fallback and the
GPU choice are both testable on a machine without a GPU.
"""

import contextlib
import dataclasses
import json
import os
from collections.abc import Sequence

import tensorflow as tf
from absl import logging

from components.trainer.params import AUTO, MIRRORED, MULTI_WORKER, NONE, ON


@dataclasses.dataclass(frozen=True)
class AccelerationPlan:
    distribution: str  # NONE, MIRRORED or MULTI_WORKER
    mixed_precision: bool
    xla: bool
    gpus: int
    onednn: bool = False  # TensorFlow's oneDNN CPU kernels

    def describe(self) -> str:
        devices = f"{self.gpus} GPU(s)" if self.gpus else f"CPU only ({'oneDNN' if self.onednn else 'Eigen'} kernels)"
        return (f"{devices}: distribution={self.distribution}, "
                f"mixed_precision={'mixed_float16' if self.mixed_precision else 'float32'}, "
                f"xla={'on' if self.xla else 'off'}")


def _switch(value: str, has_gpu: bool) -> bool:
    return has_gpu if value == AUTO else value == ON


def plan(mixed_precision: str, xla: str, distribution: str, gpus: Sequence = (),
         onednn: bool = False) -> AccelerationPlan:
    """Decides the strategy and precision for the given settings (checked by TrainParams)
    and visible GPUs."""
    has_gpu = len(gpus) > 0
    if distribution == AUTO:
        # TF_CONFIG naming several workers means a multi-worker job (as on Kubeflow or Vertex).
        workers = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {}).get("worker", [])
        distribution = MULTI_WORKER if len(workers) > 1 else (MIRRORED if has_gpu else NONE)
    return AccelerationPlan(
        distribution=distribution,
        mixed_precision=_switch(mixed_precision, has_gpu),
        xla=_switch(xla, has_gpu),
        gpus=len(gpus),
        onednn=onednn,
    )


def onednn_enabled() -> bool:
    """Whether this process's TensorFlow runs its oneDNN kernels (fixed when TensorFlow loads)."""
    from tensorflow.python.util import _pywrap_util_port  # pylint: disable=import-outside-toplevel

    return bool(_pywrap_util_port.IsMklEnabled())


def detect(mixed_precision: str, xla: str, distribution: str) -> AccelerationPlan:
    """``plan`` for the GPUs this process sees, logged so a run says what it used."""
    chosen = plan(mixed_precision, xla, distribution, tf.config.list_physical_devices("GPU"), onednn_enabled())
    logging.info("Training on %s", chosen.describe())
    if not chosen.gpus and not chosen.onednn:
        logging.warning("TensorFlow's oneDNN kernels are off (TF_ENABLE_ONEDNN_OPTS=%s, or TensorFlow was imported "
                        "before the components package): expect training on the CPU several times slower.",
                        os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset"))
    if chosen.mixed_precision and not chosen.gpus:
        logging.warning("Mixed precision was forced on without a GPU: expect slower training on the CPU.")
    return chosen


def create_strategy(chosen: AccelerationPlan) -> tf.distribute.Strategy:
    if chosen.distribution == MIRRORED:
        # Every GPU; without one, every (logical) CPU device, so a CPU-only
        # machine split into devices exercises the same replica logic.
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy(devices=[device.name for device in devices])
    if chosen.distribution == MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()  # the default: no distribution


@contextlib.contextmanager
def precision_policy(chosen: AccelerationPlan):
    """Sets Keras' global dtype policy for the plan, restoring the previous one after."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("mixed_float16" if chosen.mixed_precision else "float32")
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
