"""What a local run shows on the console, and the log file that holds everything else.

``RunConsole`` points the process's stdout and stderr (file descriptors 1 and
2, so TensorFlow's C++ lines and Beam's worker processes too) at
``<output-dir>/logs/run-<time>.log`` and keeps the terminal for a short
account: one line per component when it ends (seconds, whether it came from
the cache, the figure that matters), training progress per epoch, and the
closing summary with the run's time.  On a terminal the running step is redrawn
in place (rich), with its progress (the step of the epoch, images per second
and time left; the files done of a Beam step) and the time the run has taken;
otherwise every line is plain, and a long step prints where it is at least once
a minute.  It follows the run through the log records LocalDagRunner writes
when a component starts and ends, and the progress events of the Trainer and
the validator (``components/progress.py``).
"""

import datetime
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Optional, TextIO

from absl import logging as absl_logging
from rich.console import Console
from rich.live import Live
from rich.text import Text

from components import progress  # no TensorFlow: it must load after the redirection

LOGS_DIR = "logs"
# Without a terminal, a running step says where it is at least this often (seconds).
PLAIN_INTERVAL = 60.0


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "?"
    seconds = round(seconds)
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def epoch_line(event: dict[str, Any]) -> str:
    """``  head  epoch 2/10  loss 0.612  acc 0.700  eval acc 0.655  210 img/s  1m20s left``"""
    line = (f"  {event['phase']:<8} epoch {event['epoch']}/{event['epochs']}  loss {_number(event['loss'])}  "
            f"acc {_number(event['accuracy'])}")
    if event["kind"] == "epoch":
        line += f"  eval acc {_number(event['eval_accuracy'])}"
    else:
        line += f"  step {event['step']}/{event['steps']}"
    if event.get("images_per_second"):
        line += f"  {event['images_per_second']:.0f} img/s"
    return line + f"  {_duration(event.get('seconds_left'))} left"


def files_line(event: dict[str, Any]) -> str:
    """``12,345/20,000 files  410 files/s  19s left``"""
    line = f"{event['done']:,}/{event['total']:,} {event['unit']}"
    if event.get("per_second"):
        line += f"  {event['per_second']:.0f} {event['unit']}/s  {_duration(event.get('seconds_left'))} left"
    return line


class _Events(logging.Handler):
    """Turns LocalDagRunner's records and the trainer's progress events into calls."""

    def __init__(self, console: "RunConsole"):
        super().__init__(logging.INFO)
        self._console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = getattr(record, "progress", None)
            if event is not None:
                self._console.training(event)
            elif record.msg == "Component %s is running.":
                self._console.started(str(record.args[0]))
            elif record.msg == "A cached execution %d is used.":
                self._console.cached()
            elif record.msg == "Component %s is finished.":
                self._console.finished(str(record.args[0]))
        except Exception:  # the display must never break the run
            logging.getLogger(__name__).debug("console update failed", exc_info=True)


class RunConsole:
    """A context: the run's output goes to the log file, the console gets the account.

    ``figure(component_id)`` gives the figure shown when a component ends ("" for none).
    With ``verbose``, nothing is redirected: the full output stays on the console.
    """

    def __init__(self, output_dir: str, figure: Callable[[str], str] = lambda _: "", verbose: bool = False,
                 stream: Optional[TextIO] = None):
        self.verbose = verbose
        self.figure = figure
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.log_path = os.path.join(os.path.abspath(output_dir), LOGS_DIR, f"run-{stamp}.log")
        self._stream = stream
        self._saved_fds = None
        self._saved_streams = None
        self._absl_stream = None
        self._console: Optional[Console] = None
        self._errors: Optional[Console] = None
        self._live: Optional[Live] = None
        self._handler = _Events(self)
        self._run_started = time.monotonic()
        self._started = 0.0
        self._cached = False
        self.current_component: Optional[str] = None
        # The running step's latest progress, and when a plain line last said where it is.
        self._running_text = ""
        self._last_plain = time.monotonic()
        self._lock = threading.RLock()
        self._stop_heartbeat = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None

    # --- the context -----------------------------------------------------------------

    def __enter__(self) -> "RunConsole":
        if not self.verbose:
            os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
            sys.stdout.flush()
            sys.stderr.flush()
            self._saved_fds = os.dup(1), os.dup(2)
            # Python-level writers too, should sys.stdout or sys.stderr not be the descriptors.
            self._saved_streams = sys.stdout, sys.stderr
            log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log_fd, 1)
            os.dup2(log_fd, 2)
            os.close(log_fd)
            sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
            stream = self._stream or self._terminal(self._saved_streams[0], self._saved_fds[0])
            errors = self._stream or self._terminal(self._saved_streams[1], self._saved_fds[1])
        else:
            stream, errors = self._stream or sys.stdout, self._stream or sys.stderr
        self._console = Console(file=stream, highlight=False, soft_wrap=True)
        self._errors = Console(file=errors, highlight=False, soft_wrap=True)
        # Every record gets written (to standard error: the log, or the console when verbose)
        # by absl's handler, which TFX logs through; the account's handler only listens.
        absl_logging.use_absl_handler()
        self._absl_stream = absl_logging.get_absl_handler().python_handler.stream
        absl_logging.get_absl_handler().python_handler.stream = sys.stderr
        logging.getLogger().addHandler(self._handler)
        logging.getLogger(progress.LOGGER_NAME).addHandler(self._handler)
        if not self.verbose:
            self.print(f"Log: {self.log_path}")
        if not self._console.is_terminal:
            self._heartbeat = threading.Thread(target=self._beat, name="console-heartbeat", daemon=True)
            self._heartbeat.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop_heartbeat.set()
        if self._heartbeat is not None:
            self._heartbeat.join()
        self._stop_live()
        logging.getLogger().removeHandler(self._handler)
        logging.getLogger(progress.LOGGER_NAME).removeHandler(self._handler)
        absl_logging.get_absl_handler().python_handler.stream = self._absl_stream
        if self._saved_fds:
            sys.stdout.flush()
            sys.stderr.flush()
            sys.stdout, sys.stderr = self._saved_streams
            for fd, saved in zip((1, 2), self._saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
            self._saved_fds = None
            for console in (self._console, self._errors):
                if console.file not in (self._stream, *self._saved_streams):
                    console.file.close()

    @staticmethod
    def _terminal(original: TextIO, saved_fd: int) -> TextIO:
        """Where the account goes: the saved descriptor, when ``original`` wrote to it
        (else ``original`` itself, which some caller put there: a test's capture, say)."""
        try:
            writes_to_descriptor = original.fileno() in (1, 2)
        except (AttributeError, OSError, ValueError):
            writes_to_descriptor = False
        if not writes_to_descriptor:
            return original
        return open(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace", closefd=True)

    # --- what is shown ---------------------------------------------------------------

    def print(self, text: str = "", style: Optional[str] = None) -> None:
        with self._lock:
            self._stop_live()
            self._console.print(text, style=style, markup=False, highlight=False)

    def error(self, text: str, style: Optional[str] = "bold red") -> None:
        """Text on the console's standard error."""
        self._stop_live()
        self._errors.print(text, style=style, markup=False, highlight=False)

    def elapsed(self) -> str:
        """How long the run has taken so far."""
        return _duration(time.monotonic() - self._run_started)

    def _running_line(self) -> Text:
        step = _duration(time.monotonic() - self._started)
        return Text(f"… {self.current_component or ''}  {step}  {self._running_text}".rstrip()
                    + f"   [run {self.elapsed()}]")

    def _show_running(self, text: str) -> None:
        """The running step's progress: redrawn in place on a terminal (with the time it and the
        run have taken); elsewhere a plain line at most once a minute."""
        with self._lock:
            self._running_text = text
            if not self._console.is_terminal:
                if text and time.monotonic() - self._last_plain >= PLAIN_INTERVAL:
                    self._plain_progress()
                return
            if self.verbose:
                return
            if self._live is None:
                # No redirection: rich would send what Python writes to sys.stdout and sys.stderr
                # (absl's records among it) to the terminal instead of the log. The line is
                # rebuilt at each refresh, so its clocks run between events.
                self._live = Live(get_renderable=self._running_line, console=self._console, transient=True,
                                  refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
                self._live.start()
            else:
                self._live.refresh()

    def _plain_progress(self) -> None:
        step = _duration(time.monotonic() - self._started)
        where = self._running_text or "still running"
        self._console.print(f"  … {self.current_component}  {step}: {where}  [run {self.elapsed()}]",
                            markup=False, highlight=False)
        self._last_plain = time.monotonic()

    def _beat(self) -> None:
        """Without a terminal: a plain line a minute for a step that reports nothing itself."""
        while not self._stop_heartbeat.wait(1.0):
            with self._lock:
                if self.current_component and time.monotonic() - self._last_plain >= PLAIN_INTERVAL:
                    self._plain_progress()

    def _stop_live(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def started(self, component: str) -> None:
        with self._lock:
            self.current_component, self._started, self._cached = component, time.monotonic(), False
            # A minute from now at the earliest, without a terminal.
            self._last_plain = self._started
        self._show_running("")

    def cached(self) -> None:
        self._cached = True

    def finished(self, component: str) -> None:
        seconds = time.monotonic() - self._started
        try:
            figure = self.figure(component)
        except Exception:  # a missing figure must not break the run
            logging.getLogger(__name__).warning("No figure for %s", component, exc_info=True)
            figure = ""
        source = "cached" if self._cached else f"{seconds:5.1f}s"
        with self._lock:
            self.current_component, self._running_text = None, ""
        self.print(f"✓ {component:<32} {source:>7}  {figure}".rstrip())

    def training(self, event: dict[str, Any]) -> None:
        if event["kind"] == "files":
            self._show_running(files_line(event))
        elif event["kind"] == "epoch":
            self.print(epoch_line(event))
        else:
            self._show_running(epoch_line(event).strip())

    def failed(self, error: BaseException) -> None:
        """The failing component, the error in a line or two, and where the full log is."""
        where = self.current_component or "the pipeline"
        message = " ".join(str(error).split())
        if len(message) > 300:
            message = message[:297] + "..."
        self.error(f"✗ {where} failed: {type(error).__name__}: {message}")
        if not self.verbose:
            self.error(f"  Full log: {self.log_path}")
