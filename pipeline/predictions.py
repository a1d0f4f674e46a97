"""Prediction files: one row per scored image, written as CSV or JSON Lines, and the
files that could not be scored beside them.

The ``predict`` command writes them from the served model's ``serving_default``; a
run with ``--predict-dir`` writes them from the BulkInferrer's prediction logs
(``batch_predictions``).  Both give the same columns:

    path, class, probability, top_k   (top_k: [[class, probability], ...], best first;
                                       a JSON list in the CSV cell, so any class name fits)

and a failures file (``<name>.failed.csv``: path, reason) for the files that are
not images or could not be read.
"""

import csv
import dataclasses
import json
import os
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

CSV, JSONL = "csv", "jsonl"
FORMATS = (CSV, JSONL)
FAILED_SUFFIX = ".failed.csv"


@dataclasses.dataclass(frozen=True)
class Prediction:
    path: str
    top_k: list[tuple[str, float]]  # (class, probability), best first

    @property
    def class_name(self) -> str:
        return self.top_k[0][0]

    @property
    def probability(self) -> float:
        return self.top_k[0][1]


@dataclasses.dataclass(frozen=True)
class Failure:
    path: str
    reason: str


def top_k(probabilities: Sequence[float], labels: Sequence[str], k: int) -> list[tuple[str, float]]:
    """The ``k`` most probable classes, best first (ties keep class index order)."""
    order = np.argsort(-np.asarray(probabilities, dtype=np.float64), kind="stable")[: max(1, k)]
    return [(labels[i], float(probabilities[i])) for i in order]


def format_of(path: str, requested: str = "") -> str:
    """``requested``, else the format the file name says (``.jsonl``/``.json`` -> JSONL, else CSV)."""
    if requested:
        if requested not in FORMATS:
            raise ValueError(f"Unknown prediction format {requested!r}: choose one of {', '.join(FORMATS)}.")
        return requested
    return JSONL if path.lower().endswith((".jsonl", ".json")) else CSV


def failures_path(output_path: str) -> str:
    """``predictions.csv`` -> ``predictions.failed.csv``."""
    stem, _ = os.path.splitext(output_path)
    return stem + FAILED_SUFFIX


def _top_k_text(prediction: Prediction) -> str:
    return json.dumps([[name, round(probability, 6)] for name, probability in prediction.top_k], ensure_ascii=False)


class PredictionWriter:
    """Writes predictions as they come (a long run keeps what it scored so far), and the failures."""

    def __init__(self, output_path: str, output_format: str = ""):
        self.path = output_path
        self.format = format_of(output_path, output_format)
        self.failures_path = failures_path(output_path)
        folder = os.path.dirname(os.path.abspath(output_path))
        os.makedirs(folder, exist_ok=True)
        self._file = open(output_path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file) if self.format == CSV else None
        if self._csv:
            self._csv.writerow(["path", "class", "probability", "top_k"])
        self.failures: list[Failure] = []
        self.scored = 0

    def write(self, predictions: Iterable[Prediction]) -> None:
        for prediction in predictions:
            if self._csv:
                self._csv.writerow([prediction.path, prediction.class_name, f"{prediction.probability:.6f}",
                                    _top_k_text(prediction)])
            else:
                row = {"path": prediction.path, "class": prediction.class_name,
                       "probability": round(prediction.probability, 6),
                       "top_k": [{"class": name, "probability": round(p, 6)} for name, p in prediction.top_k]}
                self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.scored += 1
        self._file.flush()

    def fail(self, path: str, reason: str) -> None:
        self.failures.append(Failure(path, reason))

    def close(self) -> None:
        self._file.close()
        if self.failures:
            with open(self.failures_path, "w", encoding="utf-8", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["path", "reason"])
                writer.writerows((failure.path, failure.reason) for failure in self.failures)
        elif os.path.exists(self.failures_path):
            os.remove(self.failures_path)  # from an earlier run: nothing failed this time

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def read_predictions(path: str) -> list[dict]:
    """The rows of a prediction file, as dicts (``top_k`` as a list of (class, probability) pairs)."""
    with open(path, encoding="utf-8", newline="") as f:
        if format_of(path) == JSONL:
            rows = [json.loads(line) for line in f if line.strip()]
            for row in rows:
                row["top_k"] = [(item["class"], item["probability"]) for item in row["top_k"]]
            return rows
        rows = list(csv.DictReader(f))
    for row in rows:
        row["probability"] = float(row["probability"])
        row["top_k"] = [(name, float(probability)) for name, probability in json.loads(row["top_k"])]
    return rows


def read_failures(output_path: str) -> list[Failure]:
    path = failures_path(output_path)
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return [Failure(row["path"], row["reason"]) for row in csv.DictReader(f)]


def scored_examples(prediction_log_files: Sequence[str]) -> Iterator[tuple[dict, np.ndarray]]:
    """Each example a BulkInferrer scored (its features, by name: a list of values each) and its
    probabilities, from the PredictionLogs of the ``score_examples`` signature (the request
    holds the serialized examples, the response their probabilities)."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_log_pb2  # pylint: disable=import-outside-toplevel

    from components.serving_signature import EXAMPLES, PROBABILITIES  # pylint: disable=import-outside-toplevel

    if not prediction_log_files:
        return
    for record in tf.data.TFRecordDataset(list(prediction_log_files), compression_type="GZIP"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy()).predict_log
        examples = np.ravel(tf.make_ndarray(log.request.inputs[EXAMPLES]))
        probabilities = tf.make_ndarray(log.response.outputs[PROBABILITIES]).reshape(len(examples), -1)
        for serialized, row in zip(examples, probabilities):
            feature = tf.train.Example.FromString(serialized).features.feature
            yield {name: list(value.bytes_list.value) for name, value in feature.items()}, row


def batch_predictions(prediction_log_files: Sequence[str], labels: Sequence[str], k: int,
                      root: str = "") -> list[Prediction]:
    """The predictions in the BulkInferrer's PredictionLogs, paths under ``root``."""
    from components import features  # pylint: disable=import-outside-toplevel

    predictions = []
    for example, row in scored_examples(prediction_log_files):
        relative = example[features.RELATIVE_PATH][0].decode("utf-8")
        predictions.append(Prediction(os.path.join(root, relative) if root else relative, top_k(row, labels, k)))
    return sorted(predictions, key=lambda prediction: prediction.path)


def copies_and_failures(report: dict, root: str = "") -> tuple[dict[str, str], list[Failure]]:
    """From the validator's report of the unlabelled images: the exact copies it set aside
    (copy -> the kept file, scored for both) and the files it rejected for any other reason."""
    def under_root(path: str) -> str:
        return os.path.join(root, path) if root else path

    copies = {}
    for group in report.get("copy_groups", []):
        kept = group["members"][0]["path"]
        for member in group["members"][1:]:
            if member["rejected"] and member["exact_copy_of_first"]:
                copies[under_root(member["path"])] = under_root(kept)
    failures = [Failure(under_root(r["path"]), f"{r['reason']}: {r['detail']}" if r.get("detail") else r["reason"])
                for r in report.get("rejected", []) if under_root(r["path"]) not in copies]
    return copies, failures


def write_batch_predictions(output_path: str, predictions: list[Prediction], copies: dict[str, str],
                            failures: list[Failure]) -> PredictionWriter:
    """Writes the pipeline's predictions (each copy with its kept file's answer) and failures."""
    by_path = {prediction.path: prediction for prediction in predictions}
    extra = [Prediction(copy, by_path[kept].top_k) for copy, kept in copies.items() if kept in by_path]
    with PredictionWriter(output_path) as writer:
        writer.write(sorted(predictions + extra, key=lambda prediction: prediction.path))
        for failure in failures:
            writer.fail(failure.path, failure.reason)
    return writer
