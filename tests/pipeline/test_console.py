"""The local run's console account and its log file."""

import io
import logging
import os

from components import progress
from pipeline import console as console_lib

RUNNER = logging.getLogger("tfx.orchestration.local.local_dag_runner")


def _epoch(kind="epoch", epoch=2, step=10):
    return {"kind": kind, "phase": "scratch", "epoch": epoch, "epochs": 10, "step": step, "steps": 10,
            "loss": 0.61234, "accuracy": 0.7, "eval_accuracy": 0.655, "eval_loss": 0.9, "images_per_second": 210.4,
            "seconds_left": 80.2}


def test_the_console_gets_the_account_and_the_log_gets_everything(tmp_path):
    RUNNER.setLevel(logging.INFO)
    shown = io.StringIO()
    with console_lib.RunConsole(str(tmp_path), figure=lambda c: f"{c} figure", stream=shown) as console:
        RUNNER.info("Component %s is running.", "ImageValidator")
        os.write(2, b"a C++ line from TensorFlow\n")
        print("a print from a library")
        RUNNER.info("Component %s is finished.", "ImageValidator")
        RUNNER.info("Component %s is running.", "Transform")
        RUNNER.info("A cached execution %d is used.", 7)
        RUNNER.info("Component %s is finished.", "Transform")
        logging.getLogger(progress.LOGGER_NAME).info("epoch", extra={"progress": _epoch()})
        logging.getLogger(progress.LOGGER_NAME).info("step", extra={"progress": _epoch("step", 3, 4)})
        log_path = console.log_path
    lines = shown.getvalue().splitlines()
    assert lines[0] == f"Log: {log_path}" and log_path.startswith(str(tmp_path / "logs" / "run-"))
    assert lines[1].startswith("✓ ImageValidator") and lines[1].endswith("s  ImageValidator figure")
    assert lines[2].startswith("✓ Transform") and "cached  Transform figure" in lines[2]
    assert lines[3] == "  scratch  epoch 2/10  loss 0.612  acc 0.700  eval acc 0.655  210 img/s  1m20s left"
    assert len(lines) == 4  # step events are only redrawn in place on a terminal
    with open(log_path, encoding="utf-8") as f:
        log = f.read()
    assert "a C++ line from TensorFlow" in log and "a print from a library" in log
    assert "Component ImageValidator is running." in log
    assert "C++" not in shown.getvalue()


def test_a_failure_names_the_component_the_error_and_the_log(tmp_path):
    RUNNER.setLevel(logging.INFO)
    shown = io.StringIO()
    with console_lib.RunConsole(str(tmp_path), stream=shown) as console:
        RUNNER.info("Component %s is running.", "Trainer")
        console.failed(ValueError("Need at least 2 classes\nto train a classifier."))
    text = shown.getvalue()
    assert "✗ Trainer failed: ValueError: Need at least 2 classes to train a classifier." in text
    assert f"Full log: {console.log_path}" in text


def test_verbose_leaves_the_output_where_it_was(tmp_path, capfd):
    with console_lib.RunConsole(str(tmp_path), verbose=True) as console:
        os.write(2, b"straight to the console\n")
        console.print("a line")
    captured = capfd.readouterr()
    assert "straight to the console" in captured.err and "a line" in captured.out
