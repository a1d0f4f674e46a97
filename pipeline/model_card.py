"""A model card with every pushed version: ``model_card.md`` and its twin ``model_card.json``.

Written into the version folder after a local run pushed it (TF Serving reads
only ``saved_model.pb``, ``variables/`` and ``assets/`` there), from what the
run's ``summary.json`` already holds: the data, the training, the evaluation
against its baseline, the serving contract, the TFLite figures and the known
limitations.  Each file is written under a temporary name and renamed, so a
reader never sees half a card.
"""

import json
import os
import platform
from importlib import metadata
from typing import Any, Optional

from components import serving_signature
from components.image_bytes import TENSORFLOW_FORMATS
from components.model_pusher import versioning
from pipeline.config import PipelineConfig

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
SOFTWARE = ("tensorflow", "tfx", "tensorflow-transform", "tensorflow-model-analysis", "apache-beam", "tf-keras")


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in SOFTWARE:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return found


def _limitations(summary: dict[str, Any], config: PipelineConfig) -> list[str]:
    limits = []
    chance = summary.get("chance") or {}
    if chance.get("near_chance"):
        limits.append(chance["message"])
    count = (summary.get("metrics") or {}).get("example_count")
    if count:
        # A binomial's 95% interval half-width at the measured accuracy.
        accuracy = summary["metrics"].get("accuracy") or 0.0
        half = 1.96 * (accuracy * (1 - accuracy) / count) ** 0.5
        limits.append(f"Evaluated on {int(count)} images: the eval accuracy is known to about "
                      f"+-{half:.2f} (95%).")
    limits += [
        f"It knows only the classes {', '.join(summary.get('label_names', []))}: any image gets one of them, "
        "however unlike them it is (no 'none of these' answer).",
        f"It sees images at {config.train.image_size}x{config.train.image_size} pixels (the whole image, "
        "squashed to a square): details smaller than that resolution can show are lost.",
        f"Its data came from one folder ({summary.get('data_dir')}); images from another camera, place or "
        "time may be classified worse than the eval split shows.",
    ]
    if summary.get("tflite"):
        limits.append("TFLite latencies were measured on the training machine's CPU, not on a phone.")
    return limits


def build_card(summary: dict[str, Any], config: PipelineConfig) -> dict[str, Any]:
    """The card's content, from a run's summary and config."""
    counts = summary.get("counts") or {}
    train = config.train
    history = summary.get("training") or {}
    metrics = summary.get("metrics") or {}
    return {
        "model": {
            "name": config.serving_model_name,
            "version": summary.get("pushed_version"),
            "path": summary.get("pushed_model_dir"),
            "architecture": "ResNet50 backbone (Keras applications), global average pooling, dropout, "
                            "dense softmax head",
            "run_id": summary.get("run_id"),
        },
        "data": {
            "source": summary.get("data_dir"),
            "classes": summary.get("label_names", []),
            "examples_per_split": counts.get("examples", {}),
            "examples_per_class_and_split": counts.get("per_class", {}),
            "validation": {key: counts.get(key) for key in ("files_seen", "examples_used", "files_rejected",
                                                            "rejected_by_reason", "copy_groups", "validation_report")},
        },
        "training": {
            "weights": train.weights,
            "recipe": train.recipe,
            "epochs": {"head": train.head_epochs, "finetune": train.finetune_epochs},
            "epochs_run": history.get("epochs_run", {}),
            "image_size": train.image_size,
            "batch_size": train.batch_size,
            "augmentation_preset": train.augment.preset,
            "seed": train.seed,
            "warm_start": train.warm_start,
            "hardware": history.get("hardware"),
            "software": _versions(),
        },
        "evaluation": {
            "accuracy": metrics.get("accuracy"),
            "loss": metrics.get("loss"),
            "examples": metrics.get("example_count"),
            "per_class": summary.get("per_class", {}),
            "confusion_matrix": summary.get("confusion_matrix", {}),
            "calibration_ece": ((summary.get("interpretation") or {}).get("calibration") or {}).get("ece"),
            "baseline_model": summary.get("baseline_model"),
            "baseline_metrics": summary.get("baseline_metrics", {}),
            "blessing": {"min_accuracy": config.min_accuracy, "max_accuracy_drop": config.max_accuracy_drop,
                         "blessed": summary.get("blessed")},
        },
        "serving": {
            "signatures": {
                serving_signature.SERVING_DEFAULT: f"{serving_signature.IMAGE_BYTES}: string [batch] (encoded files)",
                serving_signature.SERVING_EXAMPLES: f"{serving_signature.EXAMPLES}: serialized tf.Example [batch]",
            },
            "outputs": [serving_signature.PROBABILITIES, serving_signature.CLASS_INDEX, serving_signature.CLASS_NAME,
                        serving_signature.TOP_K_CLASS_NAMES, serving_signature.TOP_K_PROBABILITIES],
            "accepted_formats": list(TENSORFLOW_FORMATS),
            "max_pixels": train.max_serving_pixels,
            "image_size": train.image_size,
            "labels_file": f"assets/{serving_signature.LABELS_FILE}",
        },
        "tflite": summary.get("tflite") or {},
        "limitations": _limitations(summary, config),
    }


def _number(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]


def to_markdown(card: dict[str, Any]) -> str:
    model, data, training, evaluation = card["model"], card["data"], card["training"], card["evaluation"]
    serving, tflite = card["serving"], card["tflite"]
    lines = [f"# Model card: {model['name']}, version {model['version']}", "",
             f"{model['architecture']}; image classifier over {len(data['classes'])} classes: "
             f"{', '.join(data['classes'])}. Run `{model['run_id']}`.", "", "## Data", "",
             f"Source folder: `{data['source']}`.", ""]
    splits = sorted({split for per_split in data["examples_per_class_and_split"].values() for split in per_split})
    lines += _table(["class", *splits], [[name, *(per_split.get(split, 0) for split in splits)]
                                         for name, per_split in sorted(data["examples_per_class_and_split"].items())])
    validation = data["validation"]
    lines += ["", f"Validation: {validation.get('files_seen')} files seen, {validation.get('examples_used')} used, "
              f"{validation.get('files_rejected')} rejected {validation.get('rejected_by_reason') or ''}, "
              f"{validation.get('copy_groups') or 0} copy groups (report: `{validation.get('validation_report')}`).",
              "", "## Training", ""]
    lines += _table(["setting", "value"], [
        ["weights", training["weights"]], ["recipe", training["recipe"]],
        ["epochs (head, fine-tune)", f"{training['epochs']['head']}, {training['epochs']['finetune']}"],
        ["epochs run", ", ".join(f"{k} {v}" for k, v in training["epochs_run"].items()) or "n/a"],
        ["image size", training["image_size"]], ["batch size", training["batch_size"]],
        ["augmentation preset", training["augmentation_preset"]], ["seed", training["seed"]],
        ["warm start", training["warm_start"]], ["hardware", training["hardware"] or "n/a"],
        ["software", ", ".join(f"{k} {v}" for k, v in training["software"].items())],
    ])
    baseline = evaluation["baseline_model"]
    lines += ["", "## Evaluation", "",
              f"Eval accuracy {_number(evaluation['accuracy'])}, loss {_number(evaluation['loss'])}, on "
              f"{int(evaluation['examples'] or 0)} images. Baseline: "
              + (f"`{baseline}` (accuracy {_number(evaluation['baseline_metrics'].get('accuracy'))})" if baseline
                 else "none (the first blessed model)")
              + f". Blessing needs accuracy >= {evaluation['blessing']['min_accuracy']} and at most "
              f"{evaluation['blessing']['max_accuracy_drop']} below the baseline. Expected calibration error: "
              f"{_number(evaluation['calibration_ece'])}.", ""]
    lines += _table(["class", "recall", "precision", "eval images"], [
        [name, _number(v.get("recall")), _number(v.get("precision")), v.get("eval_examples", "n/a")]
        for name, v in evaluation["per_class"].items()])
    matrix = evaluation["confusion_matrix"]
    if matrix:
        lines += ["", "Confusion matrix (rows: actual, columns: predicted):", ""]
        lines += _table(["", *matrix["labels"]], [[name, *(int(c) for c in row)]
                                                  for name, row in zip(matrix["labels"], matrix["counts"])])
    lines += ["", "## Serving contract", "",
              f"- `{serving_signature.SERVING_DEFAULT}`: {serving['signatures'][serving_signature.SERVING_DEFAULT]}; "
              f"`{serving_signature.SERVING_EXAMPLES}`: {serving['signatures'][serving_signature.SERVING_EXAMPLES]}.",
              f"- Outputs: {', '.join(f'`{name}`' for name in serving['outputs'])}.",
              f"- Accepted formats: {', '.join(f.upper() for f in serving['accepted_formats'])}; images claiming more "
              f"than {serving['max_pixels']} pixels are refused before decoding.",
              f"- Decoding, resizing to {serving['image_size']} px and normalisation are inside the model; class "
              f"names in `{serving['labels_file']}`."]
    if tflite.get("models"):
        lines += ["", "## TFLite", "",
                  f"In `tflite/`: uint8 input [1, {tflite['image_size']}, {tflite['image_size']}, 3] (the caller "
                  "decodes and resizes), labels in `tflite/labels.txt`.", ""]
        lines += _table(["model", "size (MB)", "accuracy", "agreement with SavedModel", "max prob. difference",
                         "latency (ms, this CPU)"], [
            [v["file"], f"{v['size_bytes'] / 1e6:.1f}", _number(v.get("accuracy")), _number(v.get("agreement")),
             _number(v.get("max_probability_difference")), v.get("latency_ms", "n/a")]
            for v in tflite["models"].values()])
    lines += ["", "## Limitations", ""] + [f"- {limit}" for limit in card["limitations"]]
    return "\n".join(lines) + "\n"


def write_model_card(summary: dict[str, Any], config: PipelineConfig) -> Optional[str]:
    """Writes the card into the pushed version's folder; returns the Markdown's path (None: nothing pushed)."""
    version_dir = summary.get("pushed_model_dir")
    if not version_dir or "://" in version_dir or not os.path.isdir(version_dir):
        return None
    card = build_card(summary, config)
    versioning.write_atomically(os.path.join(version_dir, CARD_JSON), json.dumps(card, indent=2, sort_keys=True) + "\n")
    path = os.path.join(version_dir, CARD_MD)
    versioning.write_atomically(path, to_markdown(card))
    return path
