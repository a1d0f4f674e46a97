"""local_runner.py: its command, and the whole pipeline through LocalDagRunner on tiny
generated images, twice."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import local_runner
import predict
from components import image_bytes, serving_signature
from components.model_pusher import versioning
from components.trainer import tflite_export
from pipeline import predictions
from tests import bad_corpus
from tests.helpers import HYMENOPTERA, REPO_ROOT, TINY_TRAINING_FLAGS, encode_distinct_image, encode_image

# 24 images: Beam in-process (worker processes would only add their start-up).
TINY = TINY_TRAINING_FLAGS + ["--demo-images-per-class", "8", "--beam-workers", "1"]


def _run(output_dir, *extra):
    assert local_runner.main(TINY + ["--output-dir", str(output_dir), *extra]) == 0
    with open(os.path.join(output_dir, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


def _folder_to_score(root):
    """Unlabelled images, nested, with an exact copy and files the model cannot read."""
    (root / "more").mkdir(parents=True)
    good = {}
    for number, colour in enumerate(((200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 20))):
        path = root / ("more" if number % 2 else "") / f"photo {number}.jpg"
        path.write_bytes(encode_distinct_image(colour, seed=100 + number))
        good[str(path)] = path.read_bytes()
    (root / "copy of photo 0.jpg").write_bytes(good[str(root / "photo 0.jpg")])
    good[str(root / "copy of photo 0.jpg")] = good[str(root / "photo 0.jpg")]
    (root / "notes.txt").write_text("not an image")
    (root / "more" / "broken.png").write_bytes(encode_image(image_format="PNG")[:60])
    return good, {str(root / "notes.txt"), str(root / "more" / "broken.png")}


# Stated tolerances of the TFLite models against the SavedModel, on real photos.
FLOAT_TFLITE_MAX_PROBABILITY_DIFFERENCE = 0.02
INT8_TFLITE_MIN_AGREEMENT = 0.8


@pytest.mark.e2e
def test_demo_pipeline_pushes_a_model_that_serves_raw_jpeg_bytes_then_reruns_from_cache(tmp_path, capsys):
    output_dir = tmp_path / "out"
    to_score, unreadable = _folder_to_score(tmp_path / "to_score")
    settings = ["--predict-dir", str(tmp_path / "to_score"), "--tflite", "float16,int8",
                "--tflite-calibration-images", "16"]
    summary = _run(output_dir, "--min-accuracy", "0", *settings)

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

    _check_why_the_model_is_wrong(summary, output_dir)
    _check_batch_predictions(summary, pushed, to_score, unreadable)
    _check_tflite(summary, pushed)
    _check_model_card(summary, pushed)
    _check_predict_command(pushed, output_dir / "demo_data", tmp_path)

    # Unchanged data: the cached Trainer gives the same model, now also the
    # baseline; it is blessed (no regression) but already serving: no new version.
    same = _run(output_dir, "--min-accuracy", "0", *settings)
    assert same["blessed"] is True and same["already_serving"] is True
    assert same["pushed_model_dir"] == pushed and same["pushed_version"] == 1
    assert versioning.versions(str(output_dir / "serving" / "image_classifier")) == [1]

    # Unchanged data and training settings: TFX reuses the cached results; the
    # stricter threshold re-runs only the Evaluator (against the blessed baseline).
    rerun = _run(output_dir, "--min-accuracy", "1.0", *settings)
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
        assert rerun["predictions"]["skipped"] == "the model was not blessed, so nothing was scored"
        assert versioning.versions(str(output_dir / "serving" / "image_classifier")) == [1]


def _served(pushed, encoded):
    outputs = tf.saved_model.load(pushed).signatures["serving_default"](image_bytes=tf.constant(encoded))
    return ([name.decode() for name in outputs[serving_signature.CLASS_NAME].numpy()],
            outputs[serving_signature.PROBABILITIES].numpy())


def _check_why_the_model_is_wrong(summary, output_dir):
    """Every eval image's prediction is kept: the misclassified ones listed and shown with
    Grad-CAM maps, calibration measured, and the whole report in one HTML file."""
    found = summary["interpretation"]
    assert found["eval_images"] == summary["counts"]["examples"]["eval"]
    with open(found["misclassified_file"], encoding="utf-8") as f:
        assert len(f.readlines()) - 1 == found["misclassified"]
    matrix = np.array(summary["confusion_matrix"]["counts"])
    assert found["misclassified"] == matrix.sum() - np.trace(matrix)  # the Evaluator counted the same
    assert 0.0 <= found["calibration"]["ece"] <= 1.0
    assert sum(b["count"] for b in found["calibration"]["bins"]) == found["eval_images"]
    report = (output_dir / "run_report.md").read_text(encoding="utf-8")
    for heading in ("## Why the model is wrong", "## Calibration", "## Data problems"):
        assert heading in report
    files = output_dir / "run_report_files"
    gallery = list(files.glob("misclassified_*.png"))
    assert bool(gallery) == (found["misclassified"] > 0)
    assert "None of the eval images is misclassified." in report or gallery
    for image in [*gallery, files / "correct.png", files / "reliability.png"]:
        assert tf.io.decode_png(image.read_bytes()).shape[-1] in (3, 4)
    page = (output_dir / "run_report.html").read_text(encoding="utf-8")
    assert 'href="#why-the-model-is-wrong"' in page and 'href="#calibration"' in page
    assert re.findall(r'<img[^>]*src="([^"]+)"', page) and all(
        source.startswith("data:image/png;base64,") for source in re.findall(r'<img[^>]*src="([^"]+)"', page))


def _check_batch_predictions(summary, pushed, to_score, unreadable):
    """The BulkInferrer scored every readable image (the copy too) as serving_default does."""
    found = summary["predictions"]
    assert found["skipped"] is None and found["scored"] == len(to_score) and found["failed"] == len(unreadable)
    rows = {row["path"]: row for row in predictions.read_predictions(found["path"])}
    assert set(rows) == set(to_score)
    names, probabilities = _served(pushed, list(to_score.values()))
    for path, name, expected in zip(to_score, names, probabilities):
        assert rows[path]["class"] == name and rows[path]["probability"] == pytest.approx(expected.max(), abs=1e-4)
    assert {failure.path for failure in predictions.read_failures(found["path"])} == unreadable


def _check_tflite(summary, pushed):
    """Both TFLite models sit in the pushed version with their figures, and answer like the
    SavedModel on real photos: float within a stated tolerance, int8 agreeing on a stated share."""
    figures = summary["tflite"]["models"]
    assert set(figures) == {"float16", "int8"}
    for kind, values in figures.items():
        assert os.path.getsize(os.path.join(pushed, "tflite", values["file"])) == values["size_bytes"]
        assert 0 <= values["accuracy"] <= 1 and 0 <= values["agreement"] <= 1 and values["latency_ms"] > 0
        assert values["input"]["dtype"] == "uint8" and values["input"]["shape"] == [1, 32, 32, 3], kind
    assert figures["int8"]["size_bytes"] < 0.6 * figures["float16"]["size_bytes"]
    assert (pathlib.Path(pushed) / "tflite" / "labels.txt").read_text().split() == summary["label_names"]

    # Real photos when the shared set sits beside the repository; the run's demo images otherwise.
    demo_data = pathlib.Path(pushed).parents[2] / "demo_data"
    photos = (sorted(HYMENOPTERA.glob("val/*/*.jpg")) or sorted(demo_data.glob("*/*.jpg")))[::8][:24]
    assert photos
    encoded = [photo.read_bytes() for photo in photos]
    _, expected = _served(pushed, encoded)
    pixels = [tflite_export.as_uint8(image_bytes.decode_and_resize(tf.constant(data), 32).numpy())
              for data in encoded]
    float_model = tflite_export.TFLiteClassifier(os.path.join(pushed, "tflite", "model_float16.tflite"))
    answers = np.stack([float_model(image) for image in pixels])
    assert np.abs(answers - expected).max() <= FLOAT_TFLITE_MAX_PROBABILITY_DIFFERENCE
    int8_model = tflite_export.TFLiteClassifier(os.path.join(pushed, "tflite", "model_int8.tflite"))
    assert int8_model.input["quantization"] == (1.0, 0)  # raw pixels go in as they are
    int8_answers = np.stack([int8_model(image) for image in pixels])
    assert np.mean(int8_answers.argmax(axis=1) == expected.argmax(axis=1)) >= INT8_TFLITE_MIN_AGREEMENT


def _check_model_card(summary, pushed):
    card = json.loads((pathlib.Path(pushed) / "model_card.json").read_text(encoding="utf-8"))
    markdown = (pathlib.Path(pushed) / "model_card.md").read_text(encoding="utf-8")
    assert summary["model_card"] == os.path.join(pushed, "model_card.md")
    assert card["model"]["version"] == summary["pushed_version"] == 1
    assert card["data"]["classes"] == summary["label_names"]
    per_class = card["data"]["examples_per_class_and_split"]
    assert sum(sum(splits.values()) for splits in per_class.values()) == summary["counts"]["examples_used"]
    assert card["training"]["weights"] == "none" and card["training"]["augmentation_preset"] == "light"
    assert card["training"]["software"]["tensorflow"] == tf.__version__
    assert card["evaluation"]["accuracy"] == summary["metrics"]["accuracy"]
    assert card["evaluation"]["baseline_model"] is None  # the first model
    assert card["tflite"] == summary["tflite"] and card["limitations"]
    for heading in ("## Data", "## Training", "## Evaluation", "## Serving contract", "## TFLite", "## Limitations"):
        assert heading in markdown


def _check_predict_command(pushed, demo_dir, tmp_path):
    """predict.py over the demo images, one of them broken: a row per image, as serving_default answers."""
    folder = tmp_path / "to_predict"
    shutil.copytree(demo_dir / "circle", folder / "circle")
    (folder / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    output = tmp_path / "predictions.jsonl"
    assert predict.main([str(folder), "--model", os.path.dirname(pushed), "--output", str(output)]) == 1
    rows = predictions.read_predictions(str(output))
    images = sorted(str(path) for path in (folder / "circle").iterdir() if path.name != "broken.jpg")
    assert sorted(row["path"] for row in rows) == images
    names, _ = _served(pushed, [pathlib.Path(row["path"]).read_bytes() for row in rows])
    assert [row["class"] for row in rows] == names
    assert [f.path for f in predictions.read_failures(str(output))] == [str(folder / "circle" / "broken.jpg")]


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

    # The report shows the data problems: a few rejected files per reason, with a thumbnail when
    # the file is an image, and the copy groups side by side.
    report = (output_dir / "run_report.md").read_text(encoding="utf-8")
    data_problems = report[report.index("## Data problems"):]
    for reason in counts["rejected_by_reason"]:
        assert f"**{reason}**" in data_problems
    assert list((output_dir / "run_report_files").glob("rejected_*.jpg"))
    # Never opened for a thumbnail: what a link leaving the data folder points to.
    assert not list((output_dir / "run_report_files").glob("rejected_link_outside_data_*"))
    assert "### Copies and near-copies" in data_problems and list((output_dir / "run_report_files").glob("group_*"))
    assert (output_dir / "run_report.html").exists()


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
