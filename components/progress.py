"""Training progress as structured log events, for whoever displays them.

Each epoch's end, and (at most twice a second) the step within an epoch, go to
the ``image_classifier.progress`` logger as records carrying a ``progress``
dict: phase, epoch, step, loss, accuracy, eval accuracy, images per second and
the time left.  The logger does not propagate: the local runner's console
listens to it (``pipeline/console.py``); elsewhere the events go nowhere, and
Keras's own per-epoch lines stay in the log.  No TensorFlow here: the
console imports this module before TensorFlow loads; ``run.py`` calls these
methods from a Keras ``LambdaCallback``.
"""

import logging
import time

LOGGER_NAME = "image_classifier.progress"
_LOGGER = logging.getLogger(LOGGER_NAME)
_LOGGER.propagate = False
_LOGGER.setLevel(logging.INFO)
_STEP_INTERVAL = 0.5  # seconds between step events


class ProgressEvents:
    """Emits progress events for a phase of a run of ``total_epochs`` epochs (Keras
    numbers a phase's epochs from the run's start)."""

    def __init__(self, phase: str, total_epochs: int, steps_per_epoch: int, batch_size: int):
        self._phase, self._total = phase, total_epochs
        self._steps, self._batch_size = steps_per_epoch, batch_size
        self._epoch = 0
        self._epoch_start = self._first_step_end = self._last_event = 0.0
        self._seconds_per_step = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._epoch_start = self._last_event = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if batch == 0:
            self._first_step_end = now
        if now - self._last_event < _STEP_INTERVAL:
            return
        self._last_event = now
        self._emit("step", step=batch + 1, logs=logs or {}, now=now)

    def on_epoch_end(self, epoch, logs=None):
        now = time.monotonic()
        self._emit("epoch", step=self._steps, logs=logs or {}, now=now)
        self._seconds_per_step = (now - self._epoch_start) / self._steps  # evaluation included

    def _emit(self, kind: str, step: int, logs: dict, now: float) -> None:
        epoch_number = self._epoch + 1
        # The first step of a phase also builds its graph: until a whole epoch has run
        # without that, rates are timed from the end of the first step.
        if self._seconds_per_step is None and step > 1:
            timed_steps, elapsed = step - 1, now - self._first_step_end
        else:
            timed_steps, elapsed = step, now - self._epoch_start
        per_step = self._seconds_per_step or (elapsed / timed_steps if elapsed > 0 else None)
        steps_left = (self._total - epoch_number) * self._steps + (self._steps - step)
        event = {
            "kind": kind, "phase": self._phase, "epoch": epoch_number, "epochs": self._total, "step": step,
            "steps": self._steps, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            "eval_accuracy": logs.get("val_accuracy"), "eval_loss": logs.get("val_loss"),
            "images_per_second": timed_steps * self._batch_size / elapsed if elapsed > 0 else None,
            "seconds_left": steps_left * per_step if per_step else None,
        }
        _LOGGER.info("%s", kind, extra={"progress": event})
