"""The gate: its verdict in the report, and check_gate stopping the run and naming the report."""

import os

import pytest

from components.image_validator import report as report_lib
from components.image_validator.gate import ImageValidationError, check_gate
from tests.components.image_validator.validated import RELAXED
from tests.helpers import encode_image, run_ingest, run_validator, write_image_folder


def test_gate_stops_on_the_bad_corpus_naming_the_report(corpus, tmp_path):
    _, expected, examples = corpus
    _, report = run_validator(examples, tmp_path)
    with pytest.raises(ImageValidationError) as error:
        check_gate(str(tmp_path / "report"))
    message = str(error.value)
    assert os.path.join(str(tmp_path / "report"), report_lib.REPORT_MD) in message
    assert "class 'birds' has 0 usable training images" in message
    assert "were rejected, more than the allowed 20.0%" in message
    # The reports are complete when the gate fails.
    assert report["gate"]["passed"] is False
    assert report["counts"]["files_seen"] == len(expected)
    markdown = (tmp_path / "report" / report_lib.REPORT_MD).read_text(encoding="utf-8")
    assert "Gate: FAILED" in markdown and "cats/truncated.jpg" in markdown


def test_the_gate_passes_a_clean_folder(tmp_path):
    files = {f"{label}/{n}.jpg": encode_image((40 * n, 9 * n, 200 if label == "b" else 5)) for n in range(6)
             for label in ("a", "b")}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out")
    assert report["gate"] == {"passed": True, "failures": [], "rejected_fraction": 0.0}
    check_gate(str(tmp_path / "out" / "report"))  # no exception


def test_a_split_left_empty_stops_the_run(tmp_path):
    files = {"train/a/1.jpg": encode_image((1, 2, 3)), "train/b/2.jpg": encode_image((200, 2, 3)),
             "val/a/3.jpg": b"not an image at all, just text"}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert report["gate"]["failures"] == ["split 'eval' has no usable images"]
