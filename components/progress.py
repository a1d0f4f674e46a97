"""Progress of long steps as structured log events, for whoever displays them.

Two kinds go to the ``image_classifier.progress`` logger, as records carrying a
``progress`` dict:

* training (``ProgressEvents``, from a Keras callback in ``run_fn``): each
  epoch's end, and at most twice a second the step within an epoch, with the
  loss, accuracy, images per second and the time left;
* files done of a total (``FileTally`` in the Beam workers, ``watch_files`` in
  the executor that runs them): Beam workers may be other processes, or other
  machines, so each worker writes its own count to a small file in a folder the
  executor watches, and the executor emits the sum.

The logger does not propagate: the local runner's console listens to it
(``pipeline/console.py``); elsewhere the events go nowhere, and each step's own
log lines stay in the log.  No TensorFlow at import: the console imports this
module before TensorFlow loads.
"""

import contextlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Optional

LOGGER_NAME = "image_classifier.progress"
_LOGGER = logging.getLogger(LOGGER_NAME)
_LOGGER.propagate = False
_LOGGER.setLevel(logging.INFO)
_STEP_INTERVAL = 0.5  # seconds between step events
_TALLY_INTERVAL = 1.0  # seconds between a worker's count writes, and the watcher's reads


def emit(event: dict) -> None:
    _LOGGER.info("%s", event["kind"], extra={"progress": event})


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
        emit({
            "kind": kind, "phase": self._phase, "epoch": epoch_number, "epochs": self._total, "step": step,
            "steps": self._steps, "loss": logs.get("loss"), "accuracy": logs.get("accuracy"),
            "eval_accuracy": logs.get("val_accuracy"), "eval_loss": logs.get("val_loss"),
            "images_per_second": timed_steps * self._batch_size / elapsed if elapsed > 0 else None,
            "seconds_left": steps_left * per_step if per_step else None,
        })


class FileTally:
    """A Beam worker's count of files done, written at most once a second to a file of
    its own in ``folder`` (local or any file system TensorFlow reads)."""

    def __init__(self, folder: str):
        self._folder = folder
        self._path = os.path.join(folder, uuid.uuid4().hex)
        self._count = 0
        self._written = 0.0

    def add(self, count: int) -> None:
        self._count += count
        if time.monotonic() - self._written >= _TALLY_INTERVAL:
            self.flush()

    def flush(self) -> None:
        import tensorflow as tf  # pylint: disable=import-outside-toplevel  (workers have it loaded)

        tf.io.gfile.makedirs(self._folder)
        temporary = f"{self._path}.tmp"
        with tf.io.gfile.GFile(temporary, "w") as f:
            f.write(str(self._count))
        tf.io.gfile.rename(temporary, self._path, overwrite=True)
        self._written = time.monotonic()


def _tallied(folder: str) -> int:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if not tf.io.gfile.isdir(folder):
        return 0
    total = 0
    for name in tf.io.gfile.listdir(folder):
        if name.endswith(".tmp"):
            continue
        try:
            with tf.io.gfile.GFile(os.path.join(folder, name)) as f:
                total += int(f.read() or 0)
        except (ValueError, OSError):  # being replaced: counted at the next read
            continue
    return total


def files_event(done: int, total: int, seconds: float, unit: str = "files") -> dict:
    """A ``files`` event: ``done`` of ``total`` after ``seconds``, the rate and the time left."""
    rate = done / seconds if seconds > 0 and done else None
    return {"kind": "files", "done": done, "total": total, "unit": unit, "per_second": rate,
            "seconds_left": (total - done) / rate if rate else None}


@contextlib.contextmanager
def watch_files(folder: str, total: int, unit: str = "files") -> Iterator[None]:
    """While the body runs, emits the files done of ``total`` that ``FileTally`` workers
    write into ``folder``, whenever the count changes (and once at the end)."""
    stop = threading.Event()
    start = time.monotonic()

    def poll() -> None:
        shown: Optional[int] = None
        while not stop.wait(_TALLY_INTERVAL):
            done = min(_tallied(folder), total)
            if done != shown:
                emit(files_event(done, total, time.monotonic() - start, unit))
                shown = done

    watcher = threading.Thread(target=poll, name="progress-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
    emit(files_event(min(_tallied(folder), total), total, time.monotonic() - start, unit))
