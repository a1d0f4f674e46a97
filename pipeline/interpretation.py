"""Why the model is wrong: every eval image's prediction, the misclassified ones, calibration.

The predictions come from the ``EvalInferrer`` step (TFX's BulkInferrer over the
eval split with the trained model, through its ``score_examples`` signature), so
the model's own preprocessing made them.  From them:

* ``misclassified``: every eval image whose top class is not its label, the most
  confident mistakes first; ``gallery`` picks the worst few per true class, and
  ``correct_sample`` a few right answers (stratified by class, drawn by the
  seed); ``read_images`` fetches the images of the few shown, so no more than
  those are ever held;
* ``calibration``: the expected calibration error (ECE) of the top-class
  confidence over equal-width bins, and each bin's confidence and accuracy (the
  reliability diagram).
"""

import csv
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from components import sampling
from pipeline import predictions as prediction_files

CALIBRATION_BINS = 10
MISCLASSIFIED_FILE = "misclassified.csv"


@dataclasses.dataclass(frozen=True)
class EvalPrediction:
    path: str  # relative to the data folder, escaped (components/names.py)
    label: int  # the true class's index (-1 when the label is not among the model's classes)
    probabilities: np.ndarray

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(np.max(self.probabilities))

    @property
    def correct(self) -> bool:
        return self.predicted == self.label


def read_eval_predictions(prediction_log_files: Sequence[str], labels: Sequence[str]) -> list[EvalPrediction]:
    """The EvalInferrer's PredictionLogs as predictions, by path."""
    from components import features  # pylint: disable=import-outside-toplevel

    index = {name: i for i, name in enumerate(labels)}
    found = [
        EvalPrediction(
            path=example[features.RELATIVE_PATH][0].decode("utf-8"),
            label=index.get(example[features.LABEL][0].decode("utf-8"), -1),
            probabilities=np.asarray(row, np.float64),
        )
        for example, row in prediction_files.scored_examples(prediction_log_files)
    ]
    return sorted(found, key=lambda prediction: prediction.path)


def misclassified(predictions: Sequence[EvalPrediction]) -> list[EvalPrediction]:
    """The wrong ones, most confident first."""
    return sorted((p for p in predictions if not p.correct), key=lambda p: (-p.confidence, p.path))


def gallery(predictions: Sequence[EvalPrediction], labels: Sequence[str], per_class: int) -> dict[str, list]:
    """Per true class, its ``per_class`` most confident mistakes."""
    chosen: dict[str, list[EvalPrediction]] = {name: [] for name in labels}
    for prediction in misclassified(predictions):
        if 0 <= prediction.label < len(labels) and len(chosen[labels[prediction.label]]) < per_class:
            chosen[labels[prediction.label]].append(prediction)
    return chosen


def correct_sample(predictions: Sequence[EvalPrediction], count: int, seed: int) -> list[EvalPrediction]:
    """``count`` right answers, stratified by class and drawn by ``seed``."""
    right = {p.path: p for p in predictions if p.correct}
    return [right[path] for path in sampling.choose(((p.path, p.label) for p in right.values()), count, seed)]


def read_images(prediction_log_files: Sequence[str], paths: Sequence[str]) -> dict[str, bytes]:
    """The encoded images of ``paths``, as the model saw them, from the EvalInferrer's logs."""
    from components import features  # pylint: disable=import-outside-toplevel

    wanted, found = set(paths), {}
    for example, _ in prediction_files.scored_examples(prediction_log_files):
        path = example[features.RELATIVE_PATH][0].decode("utf-8")
        if path in wanted:
            found[path] = example[features.IMAGE][0]
    return found


def write_misclassified(predictions: Sequence[EvalPrediction], labels: Sequence[str], path: str) -> int:
    """Writes every misclassified eval image (``misclassified.csv``); returns how many."""
    wrong = misclassified(predictions)
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["path", "true_class", "predicted_class", "probability", "true_class_probability"])
        for p in wrong:
            true_name = labels[p.label] if p.label >= 0 else "(not a class of the model)"
            true_probability = f"{p.probabilities[p.label]:.6f}" if p.label >= 0 else ""
            writer.writerow([p.path, true_name, labels[p.predicted], f"{p.confidence:.6f}", true_probability])
    return len(wrong)


def calibration(predictions: Sequence[EvalPrediction], bins: int = CALIBRATION_BINS) -> dict[str, Any]:
    """The expected calibration error of the top-class confidence, and the reliability diagram's bins.

    ECE = sum over bins of (images in bin / images) * |accuracy in bin - mean confidence in bin|,
    bins of equal width over (0, 1].  0 is perfect; a model that says 0.9 and is right half the
    time adds 0.4 for those images.
    """
    scored = [p for p in predictions if p.label >= 0]
    if not scored:
        return {}
    confidence = np.array([p.confidence for p in scored])
    correct = np.array([p.correct for p in scored], dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidences in (edges[i], edges[i + 1]]; a confidence of exactly 0 joins the first.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table, ece = [], 0.0
    for i in range(bins):
        members = which == i
        count = int(members.sum())
        row = {"low": round(float(edges[i]), 4), "high": round(float(edges[i + 1]), 4), "count": count,
               "confidence": None, "accuracy": None}
        if count:
            row["confidence"] = round(float(confidence[members].mean()), 4)
            row["accuracy"] = round(float(correct[members].mean()), 4)
            ece += count / len(scored) * abs(row["accuracy"] - row["confidence"])
        table.append(row)
    return {"ece": round(float(ece), 4), "bins": table, "images": len(scored),
            "mean_confidence": round(float(confidence.mean()), 4), "accuracy": round(float(correct.mean()), 4)}


def summarise(predictions: Sequence[EvalPrediction], labels: Sequence[str], output_dir: str,
              prediction_logs: Sequence[str] = ()) -> dict[str, Any]:
    """What summary.json keeps: the misclassified count and file, the calibration, and the
    EvalInferrer's logs the predictions (and the report's images) come from."""
    if not predictions:
        return {}
    path = os.path.join(output_dir, MISCLASSIFIED_FILE)
    wrong = write_misclassified(predictions, labels, path)
    return {"eval_images": len(predictions), "misclassified": wrong, "misclassified_file": path,
            "calibration": calibration(predictions), "prediction_logs": list(prediction_logs)}
