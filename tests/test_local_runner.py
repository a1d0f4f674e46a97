"""local_runner.py: its command, and the whole pipeline through LocalDagRunner on tiny
generated images, twice."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import local_runner
from components import serving_signature
from components.model_pusher import versioning
from tests import bad_corpus
from tests.helpers import REPO_ROOT, TINY_TRAINING_FLAGS

# 24 images: Beam in-process (worker processes would only add their start-up).
TINY = TINY_TRAINING_FLAGS + ["--demo-images-per-class", "8", "--beam-workers", "1"]


def _run(output_dir, *extra):
    assert local_runner.main(TINY + ["--output-dir", str(output_dir), *extra]) == 0
    with open(os.path.join(output_dir, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.e2e
def test_demo_pipeline_pushes_a_model_that_serves_raw_jpeg_bytes_then_reruns_from_cache(tmp_path, capsys):
    output_dir = tmp_path / "out"
    summary = _run(output_dir, "--min-accuracy", "0")

    # What the summary promises.
    assert summary["blessed"] is True and summary["reason"] is None
    pushed = summary["pushed_model_dir"]
    assert re.fullmatch(re.escape(str(output_dir / "serving" / "image_classifier")) + r"/\d+", pushed)
    out = capsys.readouterr().out
    assert f"Pushed model: {pushed}" in out
    # The console holds the account (a line per component and per epoch, the summary); the log the rest.
    assert len(out.splitlines()) <= 40 and "✓ ImageValidator" in out and "✓ Trainer" in out
    assert "Training recipe: from-scratch (weights: none)" in out
    logs = list((output_dir / "logs").glob("run-*.log"))
    assert len(logs) == 1 and "Component Trainer is finished." in logs[0].read_text(encoding="utf-8")
    assert "Component Trainer is finished." not in out
    counts = summary["counts"]
    assert counts["files_seen"] == 24 == counts["examples_used"] and sum(counts["examples"].values()) == 24
    assert set(counts["examples"]) == {"train", "eval"} and counts["files_rejected"] == 0
    assert counts["validation_gate"]["passed"] is True and os.path.exists(counts["validation_report"])
    assert sorted(summary["label_names"]) == ["circle", "square", "triangle"]
    assert 0.0 <= summary["metrics"]["accuracy"] <= 1.0 and summary["metrics"]["loss"] > 0
    assert summary["metrics"]["example_count"] == counts["examples"]["eval"]
    assert summary["cached_components"] == []
    assert summary["pushed_version"] == 1 and summary["already_serving"] is False
    labels = summary["label_names"]
    assert set(summary["per_class"]) == set(labels)
    matrix = np.array(summary["confusion_matrix"]["counts"])
    assert summary["confusion_matrix"]["labels"] == labels and matrix.shape == (3, 3)
    assert matrix.sum() == counts["examples"]["eval"]
    assert [summary["per_class"][name]["eval_examples"] for name in labels] == matrix.sum(axis=1).tolist()
    for index, name in enumerate(labels):  # TFMA's per-class recall agrees with its confusion matrix
        recall = summary["per_class"][name]["recall"]
        if matrix[index].sum():
            assert recall == pytest.approx(matrix[index, index] / matrix[index].sum())

    # The run report: curves, confusion matrix and preview images, and where the model went.
    report = (output_dir / "run_report.md").read_text()
    for image in ("training_curves.png", "confusion_matrix.png", "augmentation_preview.png"):
        assert f"(run_report_files/{image})" in report
        assert tf.io.decode_png((output_dir / "run_report_files" / image).read_bytes()).shape[-1] in (3, 4)
    assert pushed in report and "| class | recall | precision |" in report
    assert "models.config" in report and (output_dir / "serving" / "models.config").exists()

    # The Trainer left its augmentation preview, as a PNG and for TensorBoard.
    run_dirs = list((output_dir / "pipeline_root" / "Trainer" / "model_run").iterdir())
    assert len(run_dirs) == 1
    assert tf.io.decode_png((run_dirs[0] / "augmentation_preview.png").read_bytes()).shape[-1] == 3
    assert list((run_dirs[0] / "augmentation").glob("events.out.tfevents.*"))

    # The pushed SavedModel answers on real JPEG files from the data.
    model = tf.saved_model.load(pushed)
    demo_dir = output_dir / "demo_data"
    files = [demo_dir / name / f"{name}_0000.jpg" for name in ("circle", "square", "triangle")]
    outputs = model.signatures["serving_default"](image_bytes=tf.constant([f.read_bytes() for f in files]))
    probabilities = outputs[serving_signature.PROBABILITIES].numpy()
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert {n.decode() for n in outputs[serving_signature.CLASS_NAME].numpy()} <= set(summary["label_names"])

    # Unchanged data: the cached Trainer gives the same model, now also the
    # baseline; it is blessed (no regression) but already serving: no new version.
    same = _run(output_dir, "--min-accuracy", "0")
    assert same["blessed"] is True and same["already_serving"] is True
    assert same["pushed_model_dir"] == pushed and same["pushed_version"] == 1
    assert versioning.versions(str(output_dir / "serving" / "image_classifier")) == [1]

    # Unchanged data and training settings: TFX reuses the cached results; the
    # stricter threshold re-runs only the Evaluator (against the blessed baseline).
    rerun = _run(output_dir, "--min-accuracy", "1.0")
    assert {"ImageExampleGen", "ImageValidator", "ImportSchemaGen", "StatisticsGen", "Transform", "Trainer"} <= set(
        rerun["cached_components"]
    )
    assert "Evaluator" not in rerun["cached_components"]
    assert rerun["metrics"]["accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    assert rerun["baseline_metrics"]["accuracy"] == pytest.approx(summary["metrics"]["accuracy"])
    # Blessing follows the threshold exactly; a model short of it is not pushed, with the reason.
    assert rerun["blessed"] is (rerun["metrics"]["accuracy"] >= 1.0)
    if not rerun["blessed"]:
        assert rerun["pushed_model_dir"] is None
        assert "accuracy" in rerun["reason"] and "at least 1" in rerun["reason"]
        assert versioning.versions(str(output_dir / "serving" / "image_classifier")) == [1]


@pytest.mark.e2e
@pytest.mark.subprocess  # Beam's 2 worker processes
def test_a_messy_folder_stops_at_the_gate_with_a_summary_that_adds_up(tmp_path, capsys):
    data_dir = tmp_path / "messy"
    data_dir.mkdir()
    expected = bad_corpus.make_bad_corpus(data_dir)
    output_dir = tmp_path / "out"

    # Ingest and validation run in 2 Beam worker processes (the multi-processing direct runner).
    argv = TINY + ["--data-dir", str(data_dir), "--output-dir", str(output_dir), "--beam-workers", "2"]
    assert local_runner.main(argv) == 1

    err = capsys.readouterr().err
    with open(output_dir / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    counts = summary["counts"]
    assert summary["pushed_model_dir"] is None and summary["blessed"] is False
    assert "Image validation stopped the pipeline before training" in summary["reason"]
    assert counts["validation_report"] in summary["reason"] and counts["validation_report"] in err
    assert os.path.exists(counts["validation_report"])
    assert counts["files_seen"] == len(expected) == counts["examples_used"] + counts["files_rejected"]
    assert sum(counts["rejected_by_reason"].values()) == counts["files_rejected"]
    assert counts["validation_gate"]["passed"] is False
    # Nothing after the gate ran; the published report lists every rejected file.
    for component in ("StatisticsGen", "Transform", "Trainer"):
        assert not (output_dir / "pipeline_root" / component).exists()
    report = counts["validation_report"]
    with open(report, encoding="utf-8") as f:
        markdown = f.read()
    assert all(path in markdown for path, verdict in expected.items() if verdict.reason)


@pytest.mark.e2e
def test_a_messy_folder_with_a_relaxed_gate_trains_on_its_clean_part(tmp_path):
    data_dir = tmp_path / "messy"
    data_dir.mkdir()
    expected = bad_corpus.make_bad_corpus(data_dir)
    (data_dir / "birds").rmdir()  # the empty class would stop any run
    output_dir = tmp_path / "out"
    argv = TINY + ["--data-dir", str(data_dir), "--output-dir", str(output_dir),
                   "--validation-max-rejected-fraction", "1.0", "--validation-min-examples-per-class", "1"]
    assert local_runner.main(argv) == 0

    with open(output_dir / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    counts = summary["counts"]
    assert counts["files_seen"] == len(expected) == counts["examples_used"] + counts["files_rejected"]
    assert counts["examples_used"] == sum(1 for verdict in expected.values() if verdict.reason is None)
    assert counts["validation_gate"]["passed"] is True
    # Training ran on the accepted images, the odd class name among its labels.
    assert (output_dir / "pipeline_root" / "Trainer").exists()
    model_dirs = list((output_dir / "pipeline_root" / "Trainer" / "model").glob("*/Format-Serving"))
    labels = serving_signature.read_labels(str(model_dirs[0])) if model_dirs else []
    # A class folder in Cyrillic with a space, and one whose name is Latin-1 bytes (escaped).
    assert "\u0432\u0438\u0448\u043d\u044f class" in labels and "caf\\xe9" in labels


@pytest.mark.subprocess
def test_runner_help_lists_the_flags():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "local_runner.py"), "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--data-dir", "--image-size", "--epochs", "--weights", "--output-dir", "--unfreeze-layers",
                 "--augment-brightness", "--beam-args", "--serving-model-name", "--seed"):
        assert flag in result.stdout


@pytest.mark.subprocess
def test_runner_reports_a_missing_data_dir(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "local_runner.py"), "--data-dir", str(tmp_path / "missing"),
         "--output-dir", str(tmp_path / "out"), "--weights", "none"],
        capture_output=True, text=True,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and str(tmp_path / "missing") in result.stderr
