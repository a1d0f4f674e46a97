"""A human-readable report of a run, beside ``summary.json``: ``run_report.md``, and the
same as one self-contained ``run_report.html`` (``html_report.py``).

It shows the validation summary, the training curves (both phases), the
evaluation with per-class metrics and the confusion matrix as an image, why the
model is wrong (the most confident mistakes per class with Grad-CAM maps, a few
right answers beside them, calibration with a reliability diagram), the data
problems (rejected files and copies, with thumbnails), the augmentation
preview, the TFLite figures, and where the model was pushed.  Images go to
``run_report_files/`` next to it, so the Markdown renders anywhere.
"""

import json
import os
import shutil
from collections.abc import Sequence
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import matplotlib.ticker
import numpy as np

from components import image_bytes, names, sampling
from components.image_validator import checks
from components.image_validator import executor as validator_executor
from components.image_validator import report as validation_report
from components.trainer import model as model_lib
from components.trainer.preview import PREVIEW_FILE
from components.trainer.run import HISTORY_FILE
from pipeline import grad_cam, html_report, interpretation
from pipeline.config import CONFIG_FILE, PipelineConfig

REPORT_FILE = "run_report.md"
FILES_DIR = "run_report_files"


def _format(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def plot_training_curves(epochs: list[dict[str, Any]], path: str) -> None:
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    numbers = [e["epoch"] for e in epochs]
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(numbers, [e.get(metric) for e in epochs], marker="o", label=f"train {metric}")
        axis.plot(numbers, [e.get(f"val_{metric}") for e in epochs], marker="o", label=f"eval {metric}")
        finetune = [e["epoch"] for e in epochs if e["phase"] == "finetune"]
        if finetune and len(finetune) < len(epochs):
            axis.axvline(finetune[0] - 0.5, color="gray", linestyle="--", label="fine-tuning starts")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(metric)
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_confusion_matrix(labels: list[str], counts: list[list[float]], path: str) -> None:
    size = max(3.5, 0.6 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    axis.imshow(counts, cmap="Blues")
    axis.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("actual")
    peak = max([max(row) for row in counts] + [1])
    for row, values in enumerate(counts):
        for column, value in enumerate(values):
            axis.text(column, row, f"{value:g}", ha="center", va="center",
                      color="white" if value > peak / 2 else "black")
    axis.set_title("Confusion matrix (eval split)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _validation_section(counts: dict[str, Any]) -> list[str]:
    if not counts:
        return ["## Data validation", "", "The run stopped before the images were validated.", ""]
    lines = ["## Data validation", "",
             f"{counts['files_seen']} files seen, {counts['examples_used']} used, "
             f"{counts['files_rejected']} rejected; "
             f"gate {'passed' if counts['validation_gate']['passed'] else 'FAILED'}.",
             "", "| split | examples used |", "|---|---|"]
    lines += [f"| {split} | {n} |" for split, n in sorted(counts["examples"].items())]
    if counts["rejected_by_reason"]:
        lines += ["", "| rejected because | files |", "|---|---|"]
        lines += [f"| {reason} | {n} |" for reason, n in sorted(counts["rejected_by_reason"].items())]
    if counts.get("copy_groups"):
        lines += ["", f"{counts['copy_groups']} groups of copies or near-copies, each shown with thumbnails "
                  "in the validation report."]
    lines += ["", f"Every file's verdict: `{counts['validation_report']}`", ""]
    return lines


def _training_section(history: Optional[dict[str, Any]], files_dir: str) -> list[str]:
    lines = ["## Training", ""]
    if not history:
        return lines + ["No training history (the Trainer did not run).", ""]
    lines += [f"Hardware: {history['acceleration']}.", "",
              "Training examples per class: " + ", ".join(
                  f"{name} {history['class_counts'].get(name, 0)}" for name in history["label_names"]), ""]
    if history["epochs"]:
        plot_training_curves(history["epochs"], os.path.join(files_dir, "training_curves.png"))
        lines += [f"![training curves]({FILES_DIR}/training_curves.png)", "",
                  "| phase | epoch | loss | accuracy | eval loss | eval accuracy |", "|---|---|---|---|---|---|"]
        lines += [f"| {e['phase']} | {e['epoch']} | {_format(e.get('loss'))} | {_format(e.get('accuracy'))} | "
                  f"{_format(e.get('val_loss'))} | {_format(e.get('val_accuracy'))} |" for e in history["epochs"]]
        lines.append("")
    return lines


def _evaluation_section(summary: dict[str, Any], files_dir: str) -> list[str]:
    metrics, baseline = summary.get("metrics") or {}, summary.get("baseline_metrics") or {}
    lines = ["## Evaluation", ""]
    if not metrics:
        return lines + ["The model was not evaluated.", ""]
    lines += ["| | accuracy | loss | examples |", "|---|---|---|---|",
              f"| this model | {_format(metrics.get('accuracy'))} | {_format(metrics.get('loss'))} | "
              f"{_format(metrics.get('example_count'), 0)} |"]
    if baseline:
        lines.append(f"| last blessed model | {_format(baseline.get('accuracy'))} "
                     f"| {_format(baseline.get('loss'))} | |")
    lines += ["", f"Blessed: **{'yes' if summary.get('blessed') else 'no'}**", ""]
    per_class = summary.get("per_class") or {}
    if per_class:
        lines += ["| class | recall | precision | eval examples |", "|---|---|---|---|"]
        lines += [f"| {name} | {_format(v['recall'])} | {_format(v['precision'])} | {v['eval_examples']} |"
                  for name, v in per_class.items()]
        lines.append("")
    matrix = summary.get("confusion_matrix")
    if matrix:
        plot_confusion_matrix(matrix["labels"], matrix["counts"], os.path.join(files_dir, "confusion_matrix.png"))
        lines += [f"![confusion matrix]({FILES_DIR}/confusion_matrix.png)", ""]
    return lines


def _sample_text(sample: Optional[dict[str, int]]) -> str:
    if not sample:
        return "images"
    return f"{sample['images']} images of {sample['classes']} classes"


def _tflite_section(tflite: dict[str, Any]) -> list[str]:
    if not tflite.get("models"):
        return []
    size = tflite["image_size"]
    drawn = f"drawn at random, stratified by class, seed {tflite['seed']}" if "seed" in tflite else "a sample"
    lines = ["## TFLite", "", f"uint8 input [1, {size}, {size}, 3] (the caller decodes and resizes), measured on "
             f"{_sample_text(tflite.get('eval_sample'))} of the eval split ({drawn}) with TFLite's interpreter "
             "against the SavedModel:", "",
             "| model | size (MB) | accuracy | agreement | max prob. difference | latency (ms, this CPU) "
             "| eval images |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {v['file']} | {v['size_bytes'] / 1e6:.1f} | {_format(v.get('accuracy'))} | "
              f"{_format(v.get('agreement'))} | {_format(v.get('max_probability_difference'))} | "
              f"{v.get('latency_ms', 'n/a')} | {v.get('eval_images')} |" for v in tflite["models"].values()]
    if tflite.get("calibration_sample"):
        lines += ["", f"The int8 model's ranges were calibrated on {_sample_text(tflite['calibration_sample'])} of "
                  f"the training split ({drawn})."]
    return lines + [""]


def _predictions_section(found: Optional[dict[str, Any]]) -> list[str]:
    if not found:
        return []
    lines = ["## Predictions", "", f"Images to score: `{found['predict_dir']}`", ""]
    if found.get("skipped"):
        lines.append(f"Not scored: {found['skipped']}.")
    if found.get("path"):
        lines.append(f"{found['scored']} images scored by the blessed model (BulkInferrer): `{found['path']}`.")
    if found.get("failed"):
        lines.append(f"{found['failed']} files could not be scored, each with its reason: "
                     f"`{found['failures_path']}`.")
    return lines + [""]


def plot_reliability(calibration: dict[str, Any], path: str) -> None:
    """The reliability diagram: each confidence bin's accuracy against its confidence."""
    bins = [b for b in calibration["bins"] if b["count"]]
    figure, axis = plt.subplots(figsize=(4.6, 4.2))
    axis.plot([0, 1], [0, 1], linestyle="--", color="gray", label="perfectly calibrated")
    width = calibration["bins"][0]["high"] - calibration["bins"][0]["low"]
    axis.bar([b["low"] for b in bins], [b["accuracy"] for b in bins], width=width, align="edge",
             edgecolor="black", alpha=0.7, label="accuracy in the bin")
    axis.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="C3",
              label="mean confidence in the bin")
    for b in bins:
        axis.annotate(str(b["count"]), (b["low"] + width / 2, b["accuracy"]), ha="center", va="bottom",
                      fontsize="x-small")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1.05)
    axis.set_xlabel("confidence (top-class probability)")
    axis.set_ylabel("accuracy")
    axis.set_title(f"Reliability (eval split), ECE {calibration['ece']:.3f}")
    axis.legend(fontsize="x-small", loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_heat_map_grid(rows: list[tuple[np.ndarray, np.ndarray, str]], path: str) -> None:
    """One row per image: the model's view of it, and its Grad-CAM overlay, with a caption."""
    figure, axes = plt.subplots(len(rows), 2, figsize=(4.4, 2.3 * len(rows)), squeeze=False)
    for (image, overlaid, caption), (left, right) in zip(rows, axes):
        left.imshow(image.astype(np.uint8))
        right.imshow(overlaid)
        left.set_title(caption, fontsize="small", loc="left")
        for axis in (left, right):
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def _interpretation_section(summary: dict[str, Any], config: PipelineConfig,
                            predictions: Sequence[interpretation.EvalPrediction], files_dir: str) -> list[str]:
    found = summary.get("interpretation") or {}
    lines = ["## Why the model is wrong", ""]
    if not found:
        return lines + ["No eval predictions (the run stopped before the model was trained).", ""]
    labels = summary["label_names"]
    lines += [f"{found['misclassified']} of {found['eval_images']} eval images misclassified; every one, with "
              f"its path and probabilities: `{found['misclassified_file']}`.", ""]
    chosen = interpretation.gallery(predictions, labels, config.misclassified_per_class)
    correct = interpretation.correct_sample(predictions, CORRECT_SHOWN, config.train.seed)
    explainer, encoded = None, {}
    if summary.get("trained_model_dir") and (any(chosen.values()) or correct):
        model, backbone, _ = model_lib.load_exported(summary["trained_model_dir"], config.train)
        explainer = grad_cam.GradCam(model, backbone, config.train.image_size)
        shown = [p.path for items in chosen.values() for p in items] + [p.path for p in correct]
        encoded = interpretation.read_images(found.get("prediction_logs", []), shown)

    def grid(items, caption, name: str) -> str:
        images = explainer.images([encoded[p.path] for p in items])
        maps = explainer.maps(images, [p.predicted for p in items])
        rows = [(image, grad_cam.overlay(image, heat_map), caption(p))
                for p, image, heat_map in zip(items, images, maps)]
        plot_heat_map_grid(rows, os.path.join(files_dir, name))
        return f"![{name}]({FILES_DIR}/{name})"

    if not found["misclassified"]:
        lines += ["None of the eval images is misclassified.", ""]
    elif config.misclassified_per_class:
        lines += ["Per true class, the most confident mistakes: the image as the model saw it, and where it "
                  "looked for the class it answered (Grad-CAM on the backbone's last convolution; red is "
                  "where the evidence was).", ""]
        cells = config.train.image_size // 32
        if cells < 4:
            lines += [f"At {config.train.image_size} px the last convolution is {cells}x{cells} cells, so the maps "
                      "can only be this coarse; a larger --image-size shows more.", ""]
        for index, (name, items) in enumerate(chosen.items()):
            if not items:
                continue
            lines += [f"### {name}: {sum(1 for p in predictions if p.label == index and not p.correct)} "
                      "misclassified", ""]
            lines.append(grid(items, lambda p: f"{p.path}\n{labels[p.label]} → {labels[p.predicted]} "
                                               f"({p.confidence:.2f})", f"misclassified_{index}.png"))
            lines.append("")
    if correct:
        lines += ["### Correctly classified, for comparison", "",
                  f"{len(correct)} right answers from {len({p.label for p in correct})} classes, drawn at random "
                  f"(stratified by class, seed {config.train.seed}).", ""]
        lines.append(grid(correct, lambda p: f"{p.path}\n{labels[p.predicted]} ({p.confidence:.2f})",
                          "correct.png"))
        lines.append("")
    calibration = found.get("calibration") or {}
    if calibration:
        plot_reliability(calibration, os.path.join(files_dir, "reliability.png"))
        lines += ["## Calibration", "",
                  f"Expected calibration error (ECE) {calibration['ece']:.3f} over {calibration['images']} eval "
                  f"images: mean confidence {calibration['mean_confidence']:.3f} against accuracy "
                  f"{calibration['accuracy']:.3f}. Bars under the diagonal mean the model is more sure than "
                  "it is right.", "", f"![reliability diagram]({FILES_DIR}/reliability.png)", "",
                  "| confidence | images | mean confidence | accuracy |", "|---|---|---|---|"]
        lines += [f"| {b['low']:.1f}-{b['high']:.1f} | {b['count']} | {_format(b['confidence'], 3)} | "
                  f"{_format(b['accuracy'], 3)} |" for b in calibration["bins"] if b["count"]]
        lines.append("")
    return lines


# Rejected files shown per reason (the validation report lists them all), and right answers shown.
REJECTED_SHOWN = 3
CORRECT_SHOWN = 3


def _data_problems_section(summary: dict[str, Any], files_dir: str, seed: int) -> list[str]:
    counts = summary.get("counts") or {}
    report_md = counts.get("validation_report")
    if not report_md:
        return []
    report_dir = os.path.dirname(report_md)
    with open(os.path.join(report_dir, validation_report.REPORT_JSON), encoding="utf-8") as f:
        report = json.load(f)
    lines = ["## Data problems", "", f"The full list, with every file's verdict: `{report_md}`.", ""]
    if not report["rejected"] and not report["copy_groups"]:
        return lines + ["No file was rejected and no two images are copies of each other.", ""]
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for rejected in report["rejected"]:
        by_reason.setdefault(rejected["reason"], []).append(rejected)
    if by_reason:
        lines += ["### Rejected files", "", f"A few per reason (up to {REJECTED_SHOWN}, drawn at random, stratified "
                  f"by class, seed {seed}):", ""]
    for reason, files in sorted(by_reason.items()):
        lines += [f"**{reason}**: {len(files)} file{'' if len(files) == 1 else 's'}", ""]
        by_path = {rejected["path"]: rejected for rejected in files}
        shown = sampling.choose(((r["path"], r["label"]) for r in files), REJECTED_SHOWN, seed)
        for number, rejected in enumerate(by_path[path] for path in shown):
            thumbnail = _thumbnail(summary.get("data_dir"), rejected,
                                   os.path.join(files_dir, f"rejected_{reason}_{number}.jpg"))
            shown = f"![{reason}]({FILES_DIR}/{os.path.basename(thumbnail)}) " if thumbnail else ""
            lines.append(f"- {shown}{names.markdown_code(rejected['path'])}: {rejected.get('detail') or reason}")
        lines.append("")
    if report["copy_groups"]:
        lines += ["### Copies and near-copies", ""]
        for group in report["copy_groups"]:
            members = group["members"]
            pictures = []
            for number, member in enumerate(members):
                source = os.path.join(report_dir, member.get("thumbnail", ""))
                if member.get("thumbnail") and os.path.isfile(source):
                    target = f"group_{group['group']}_{number}.png"
                    shutil.copy(source, os.path.join(files_dir, target))
                    pictures.append(f"![{number + 1}]({FILES_DIR}/{target})")
            lines += [f"Group {group['group']} ({group['kind']}): " + " ".join(pictures), ""]
            lines += [f"{i + 1}. {names.markdown_code(m['path'])} ({m['split']}, {m['label']}): {m['outcome']}"
                      for i, m in enumerate(members)]
            lines.append("")
    return lines


# Rejected files never opened for a thumbnail: what the validator itself would not read.
_NO_THUMBNAIL = {checks.LINK_OUTSIDE_DATA, checks.DECOMPRESSION_BOMB, checks.FILE_TOO_LARGE, checks.UNREADABLE,
                 checks.EMPTY_FILE}
_THUMBNAIL_MAX_PIXELS = 25_000_000


def _thumbnail(data_dir: Optional[str], rejected: dict[str, Any], target: str) -> Optional[str]:
    """A small JPEG of a rejected file when it is an image Pillow reads, and safe to open: inside
    the data folder (a link leaving it is never followed) and of a sane size."""
    if not data_dir or rejected["reason"] in _NO_THUMBNAIL:
        return None
    path = os.path.join(data_dir, names.os_path(rejected["path"]))
    root = os.path.realpath(data_dir)
    if os.path.commonpath([os.path.realpath(path), root]) != root:
        return None
    try:
        with open(path, "rb") as f:
            data = f.read()
        header = image_bytes.read_header(data)
        if header.height * header.width > _THUMBNAIL_MAX_PIXELS:
            return None
        small = validator_executor.thumbnail(data)
    except Exception:  # not an image, unreadable, gone: the file is listed without a picture
        return None
    with open(target, "wb") as f:
        f.write(small)
    return target


def write_report(summary: dict[str, Any], config: PipelineConfig,
                 eval_predictions: Sequence[interpretation.EvalPrediction] = ()) -> str:
    """Writes ``<output dir>/run_report.md`` (and its images) and the self-contained
    ``run_report.html`` from a run summary and its eval predictions
    (``run_summary.eval_predictions``); returns the Markdown's path."""
    output_dir = config.output_dir
    files_dir = os.path.join(output_dir, FILES_DIR)
    shutil.rmtree(files_dir, ignore_errors=True)
    os.makedirs(files_dir)
    run_dir = summary.get("model_run_dir")
    history = None
    if run_dir and os.path.exists(os.path.join(run_dir, HISTORY_FILE)):
        with open(os.path.join(run_dir, HISTORY_FILE), encoding="utf-8") as f:
            history = json.load(f)

    if summary.get("pushed_model_dir"):
        outcome = (f"Serving as version {summary['pushed_version']} in `{summary['pushed_model_dir']}`"
                   + (" (already serving: nothing new was copied)." if summary.get("already_serving") else "."))
    else:
        outcome = f"Not pushed: {summary.get('reason')}"
    lines = [f"# Run report: {summary.get('run_id', '')}", "", f"Data: `{summary.get('data_dir')}`", "",
             f"**{outcome}**", ""]
    recipe = summary.get("recipe") or {}
    if recipe:
        lines += [f"Training recipe: {recipe.get('name')} (weights: `{recipe.get('weights')}`)", ""]
    chance = summary.get("chance") or {}
    if chance.get("near_chance"):
        lines += [f"> **Warning:** {chance['message']}", ""]
    lines += _validation_section(summary.get("counts") or {})
    lines += _training_section(history, files_dir)
    lines += _evaluation_section(summary, files_dir)
    lines += _interpretation_section(summary, config, eval_predictions, files_dir)
    lines += _data_problems_section(summary, files_dir, config.train.seed)
    if run_dir and os.path.exists(os.path.join(run_dir, PREVIEW_FILE)):
        shutil.copy(os.path.join(run_dir, PREVIEW_FILE), os.path.join(files_dir, PREVIEW_FILE))
        sample = (history or {}).get("preview_sample")
        rows = (f" ({_sample_text(sample)} of the training split, drawn at random, stratified by class)"
                if sample else "")
        lines += ["## Augmentation preview", "", f"Each row: an original, then augmented versions of it{rows}.", "",
                  f"![augmentation preview]({FILES_DIR}/{PREVIEW_FILE})", ""]
    lines += _tflite_section(summary.get("tflite") or {})
    lines += ["## Serving", ""]
    if summary.get("pushed_model_dir"):
        lines += [f"- Model directory: `{summary['serving_model_base']}` (integer versions; TF Serving loads the "
                  "highest)", f"- TF Serving config: `{summary.get('models_config')}`"]
        if summary.get("model_card"):
            lines.append(f"- Model card: `{summary['model_card']}`")
        lines += [f"- Classify a folder: `python predict.py --model {summary['serving_model_base']} PATH`", ""]
    else:
        lines += ["Nothing was pushed by this run.", ""]
    lines += _predictions_section(summary.get("predictions"))
    config_path = os.path.join(output_dir, CONFIG_FILE)
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config_text = f.read()
        lines += ["## Configuration", "", f"The effective config, saved as `{CONFIG_FILE}` (rerun it with "
                  f"`--config {CONFIG_FILE}`):", "", '<details markdown="1"><summary>config.yaml</summary>', "",
                  "```yaml",
                  config_text.rstrip(), "```", "", "</details>", ""]
    path = os.path.join(output_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    html_report.write_html_report(path)
    return path
