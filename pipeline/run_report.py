"""A human-readable report of a run, beside ``summary.json``: ``run_report.md``.

It shows the validation summary, the training curves (both phases), the
evaluation with per-class metrics and the confusion matrix as an image, the
augmentation preview, and where the model was pushed.  Images go to
``run_report_files/`` next to it, so the Markdown renders anywhere.
"""

import json
import os
import shutil
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import matplotlib.ticker

from components.trainer.preview import PREVIEW_FILE
from components.trainer.run import HISTORY_FILE
from pipeline.config import CONFIG_FILE

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


def _tflite_section(tflite: dict[str, Any]) -> list[str]:
    if not tflite.get("models"):
        return []
    size = tflite["image_size"]
    lines = ["## TFLite", "", f"uint8 input [1, {size}, {size}, 3] (the caller decodes and resizes), measured on "
             "the eval split with TFLite's interpreter against the SavedModel:", "",
             "| model | size (MB) | accuracy | agreement | max prob. difference | latency (ms, this CPU) "
             "| eval images |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {v['file']} | {v['size_bytes'] / 1e6:.1f} | {_format(v.get('accuracy'))} | "
              f"{_format(v.get('agreement'))} | {_format(v.get('max_probability_difference'))} | "
              f"{v.get('latency_ms', 'n/a')} | {v.get('eval_images')} |" for v in tflite["models"].values()]
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


def write_report(summary: dict[str, Any], output_dir: str) -> str:
    """Writes ``<output_dir>/run_report.md`` (and its images) from a run summary; returns its path."""
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
    if run_dir and os.path.exists(os.path.join(run_dir, PREVIEW_FILE)):
        shutil.copy(os.path.join(run_dir, PREVIEW_FILE), os.path.join(files_dir, PREVIEW_FILE))
        lines += ["## Augmentation preview", "", "Each row: an original, then augmented versions of it.", "",
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
                  f"`--config {CONFIG_FILE}`):", "", "<details><summary>config.yaml</summary>", "", "```yaml",
                  config_text.rstrip(), "```", "", "</details>", ""]
    path = os.path.join(output_dir, REPORT_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return path
