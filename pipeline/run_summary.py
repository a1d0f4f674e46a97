"""Reads what the last pipeline run produced from ML Metadata into ``summary.json``.

Everything comes from TFX's own records: the executions of the latest
``pipeline_run`` context (cached ones included), their output artifacts, the
statistics StatisticsGen computed, the metrics and validation TFMA wrote, the
blessing and the pushed model.
"""

import json
import math
import os
from collections.abc import Sequence
from typing import Any, Optional

import ml_metadata as mlmd
import tensorflow as tf
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from ml_metadata.proto import metadata_store_pb2
from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx.types import artifact_utils
from tfx.utils import path_utils

from components import artifacts, features, serving_signature
from components.image_validator import report as validation_report
from components.image_validator.gate import ImageValidationError
from components.model_pusher import versioning
from components.trainer import tflite_export
from components.trainer.run import HISTORY_FILE
from pipeline import interpretation, model_card, predictions
from pipeline.config import PipelineConfig
from pipeline.pipeline import ACCURACY, LOSS, PRECISION, RECALL

_OUTPUT_EVENTS = (metadata_store_pb2.Event.OUTPUT, metadata_store_pb2.Event.DECLARED_OUTPUT)
PUSHER = "ServingPusher"
BULK_INFERRER = "BulkInferrer"
PREDICT_VALIDATOR = "PredictImageValidator"
EVAL_INFERRER = "EvalInferrer"
_CANDIDATE = "candidate"
_BASELINE = "baseline"


class _RunRecords:
    """The latest run's executions per component, and their output artifacts."""

    def __init__(self, metadata_path: str, pipeline_name: str):
        connection = metadata_store_pb2.ConnectionConfig()
        connection.sqlite.filename_uri = metadata_path
        connection.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
        self._store = mlmd.MetadataStore(connection)
        runs = self._store.get_contexts_by_type("pipeline_run")
        if not runs:
            raise ValueError(f"No pipeline run recorded in {metadata_path}.")
        run = max(runs, key=lambda context: context.id)
        self.run_id = run.name
        self.executions = {}
        node_prefix = pipeline_name + "."
        for execution in self._store.get_executions_by_context(run.id):
            for context in self._store.get_contexts_by_execution(execution.id):
                if context.name.startswith(node_prefix):
                    self.executions[context.name[len(node_prefix):]] = execution

    def cached_components(self) -> list[str]:
        return sorted(
            node for node, execution in self.executions.items()
            if execution.last_known_state == metadata_store_pb2.Execution.CACHED
        )

    def output(self, node_id: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        return self._artifact(node_id, key, _OUTPUT_EVENTS)

    def input(self, node_id: str, key: str) -> Optional[metadata_store_pb2.Artifact]:
        return self._artifact(node_id, key, (metadata_store_pb2.Event.INPUT, metadata_store_pb2.Event.DECLARED_INPUT))

    def _artifact(self, node_id: str, key: str, event_types) -> Optional[metadata_store_pb2.Artifact]:
        execution = self.executions.get(node_id)
        if execution is None:
            return None
        for event in self._store.get_events_by_execution_ids([execution.id]):
            if event.type in event_types and event.path.steps and event.path.steps[0].key == key:
                return self._store.get_artifacts_by_id([event.artifact_id])[0]
        return None


def _training(model_run: Optional[metadata_store_pb2.Artifact]) -> dict[str, Any]:
    """What the Trainer's history says: epochs run per phase, and the hardware it trained on."""
    path = os.path.join(model_run.uri, HISTORY_FILE) if model_run else ""
    if not path or not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        history = json.load(f)
    phases: dict[str, int] = {}
    for epoch in history.get("epochs", []):
        phases[epoch["phase"]] = phases.get(epoch["phase"], 0) + 1
    return {"epochs_run": phases, "hardware": history.get("acceleration"), "replicas": history.get("replicas"),
            "class_counts": history.get("class_counts", {})}


def _prediction_logs(inference: Optional[metadata_store_pb2.Artifact]) -> list[str]:
    """The PredictionLog files a BulkInferrer wrote (none when it did not run or scored nothing)."""
    return tf.io.gfile.glob(os.path.join(inference.uri, "prediction_logs-*")) if inference else []


def _int_property(artifact: metadata_store_pb2.Artifact, name: str) -> Optional[int]:
    if name in artifact.custom_properties:
        return artifact.custom_properties[name].int_value
    return None


def _validation_counts(report_artifact: Optional[metadata_store_pb2.Artifact]) -> dict[str, Any]:
    """files_seen = examples used + files rejected, from the image validator's report."""
    if report_artifact is None:
        return {}
    with tf.io.gfile.GFile(os.path.join(report_artifact.uri, validation_report.REPORT_JSON)) as f:
        report = json.load(f)
    counts = report["counts"]
    return {
        "files_seen": counts["files_seen"],
        "examples_used": counts["examples_used"],
        "files_rejected": counts["files_rejected"],
        "examples": counts["used_per_split"],
        "rejected_by_reason": counts["rejected_by_reason"],
        "hidden_ignored": counts["hidden_ignored"],
        "flagged_by_flag": counts.get("flagged_by_flag", {}),
        "copy_groups": counts.get("copy_groups", 0),
        "per_class": {label: values["used"] for label, values in report.get("classes", {}).items()},
        "validation_report": os.path.join(report_artifact.uri, validation_report.REPORT_MD),
        "validation_gate": report["gate"],
    }


def _eval_result(evaluation_uri: str, model_name: str):
    """TFMA's result for one model, or None (no such model, e.g. no baseline)."""
    try:
        result = tfma.load_eval_result(evaluation_uri, model_name=model_name or None)
    except Exception:  # not under this name
        return None
    return result if result.slicing_metrics else None


def _overall_slice(result) -> dict[str, dict[str, Any]]:
    """The whole eval split's metrics by sub key ("" overall, "classId:N" per class)."""
    return dict(result.slicing_metrics).get((), {}).get("", {}) if result else {}


def _overall_metrics(result) -> dict[str, float]:
    values = _overall_slice(result).get("", {})
    return {name: value["doubleValue"] for name, value in values.items() if "doubleValue" in value}


def _number(value: dict[str, Any]) -> Optional[float]:
    number = value.get("doubleValue")
    return None if number is None or number == "NaN" else float(number)


def per_class_evaluation(result, label_names: list[str]) -> dict[str, Any]:
    """Recall, precision and eval examples per class, and the confusion matrix, by class name."""
    if result is None or not label_names:
        return {}
    overall = _overall_slice(result)
    per_class = {}
    for index, name in enumerate(label_names):
        values = next((v for key, v in overall.items() if key.split(" ")[0] == f"classId:{index}"), {})
        per_class[name] = {metric: _number(values.get(metric, {})) for metric in (RECALL, PRECISION)}
    matrix = [[0.0] * len(label_names) for _ in label_names]
    plots = dict(result.plots).get((), {}).get("", {}).get("", {})
    for table in plots.get("multiClassConfusionMatrixAtThresholds", {}).get("matrices", [])[:1]:
        for entry in table.get("entries", []):
            actual, predicted = entry.get("actualClassId", 0), entry.get("predictedClassId", 0)
            if 0 <= actual < len(label_names) and 0 <= predicted < len(label_names):
                matrix[actual][predicted] += entry.get("numWeightedExamples", 0.0)
    for name, row in zip(label_names, matrix):
        per_class[name]["eval_examples"] = int(sum(row))
    return {"per_class": per_class, "confusion_matrix": {"labels": label_names, "counts": matrix}}


def _validation_failures(evaluation_uri: str) -> list[str]:
    validation = tfma.load_validation_result(evaluation_uri)
    failures = []
    for per_slice in validation.metric_validations_per_slice:
        for failure in per_slice.failures:
            threshold = failure.metric_threshold
            if threshold.HasField("change_threshold"):
                rule = "must not fall below the baseline's"
                if threshold.change_threshold.absolute.value < -1e-9:
                    rule += f" by more than {-threshold.change_threshold.absolute.value:.4g}"
            else:
                rule = f"must be at least {threshold.value_threshold.lower_bound.value:.4g}"
            failures.append(f"{failure.metric_key.name} {failure.metric_value.double_value.value:.4f} {rule}")
    return failures


def _anomalies(anomalies: Optional[metadata_store_pb2.Artifact]) -> dict[str, list[str]]:
    if anomalies is None:
        return {}
    result = {}
    split_names = artifact_utils.decode_split_names(anomalies.properties["split_names"].string_value)
    for split in split_names:
        found = anomalies_pb2.Anomalies.FromString(
            tf.io.gfile.GFile(os.path.join(anomalies.uri, f"Split-{split}", "SchemaDiff.pb"), "rb").read()
        )
        messages = [
            f"{name}: {info.short_description} ({info.description})"
            for name, info in sorted(found.anomaly_info.items())
        ]
        if messages:
            result[split] = messages
    return result


def _gate_error(error: Optional[BaseException]) -> Optional[ImageValidationError]:
    while error is not None:
        if isinstance(error, ImageValidationError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _label_names(graph: Optional[metadata_store_pb2.Artifact]) -> list[str]:
    """The label vocabulary Transform learned, or none before it ran."""
    if graph is None:
        return []
    vocabulary = tft.TFTransformOutput(graph.uri).vocabulary_by_name(features.LABEL_VOCABULARY)
    return [name.decode("utf-8") for name in vocabulary]


def _candidate_result(evaluation: metadata_store_pb2.Artifact):
    # The candidate is named "candidate" only when there was a baseline.
    return _eval_result(evaluation.uri, _CANDIDATE) or _eval_result(evaluation.uri, "")


def _blessed(blessing: Optional[metadata_store_pb2.Artifact]) -> bool:
    return bool(blessing and _int_property(blessing, "blessed") == 1)


def _was_pushed(pushed: Optional[metadata_store_pb2.Artifact]) -> bool:
    return pushed is not None and _int_property(pushed, "pushed") == 1


def build_summary(config: PipelineConfig, failure: Optional[BaseException] = None,
                  eval_predictions: Sequence[interpretation.EvalPrediction] = ()) -> dict[str, Any]:
    """Summarises the latest run; ``failure`` is what stopped it, if anything did;
    ``eval_predictions`` are the run's (``eval_predictions``)."""
    records = _RunRecords(config.metadata_path, config.pipeline_name)
    summary: dict[str, Any] = {"run_id": records.run_id, "data_dir": config.data_dir}

    summary["counts"] = _validation_counts(records.output("ImageValidator", "report"))
    gate_error = _gate_error(failure)
    summary["anomalies"] = _anomalies(records.output("ExampleValidator", "anomalies"))

    summary["label_names"] = _label_names(records.output("Transform", "transform_graph"))

    model_run = records.output("Trainer", "model_run")
    summary["model_run_dir"] = model_run.uri if model_run else None
    model = records.output("Trainer", "model")
    summary["tflite"] = tflite_export.read_figures(path_utils.serving_model_path(model.uri)) if model else {}
    summary["training"] = _training(model_run)
    baseline = records.input("Evaluator", "baseline_model")
    summary["baseline_model"] = baseline.uri if baseline else None

    evaluation = records.output("Evaluator", "evaluation")
    blessing = records.output("Evaluator", "blessing")
    summary["metrics"], summary["baseline_metrics"], failures = {}, {}, []
    if evaluation:
        result = _candidate_result(evaluation)
        candidate = _overall_metrics(result)
        summary["metrics"] = {
            "accuracy": candidate.get(ACCURACY),
            "loss": candidate.get(LOSS),
            "example_count": candidate.get("example_count"),
        }
        summary["baseline_metrics"] = {
            k: v for k, v in _overall_metrics(_eval_result(evaluation.uri, _BASELINE)).items() if k in (ACCURACY, LOSS)
        }
        failures = _validation_failures(evaluation.uri)
        summary.update(per_class_evaluation(result, summary["label_names"]))
    summary["blessed"] = _blessed(blessing)
    summary["trained_model_dir"] = path_utils.serving_model_path(model.uri) if model else None
    summary["interpretation"] = interpretation.summarise(
        eval_predictions, summary["label_names"], config.output_dir,
        _prediction_logs(records.output(EVAL_INFERRER, "inference_result")))

    pushed = records.output(PUSHER, "pushed_model")
    if failure is not None:
        summary["pushed_model_dir"] = None
        summary["reason"] = f"The pipeline stopped: {gate_error or failure}"
    elif _was_pushed(pushed):
        summary["pushed_model_dir"] = pushed.custom_properties["pushed_destination"].string_value
        summary["pushed_version"] = int(pushed.custom_properties["pushed_version"].string_value)
        # A rerun that trained nothing new finds its model already serving: nothing copied.
        summary["already_serving"] = _int_property(pushed, "already_serving") == 1
        summary["reason"] = None
    else:
        summary["pushed_model_dir"] = None
        if failures:
            summary["reason"] = "Not blessed by the Evaluator: " + "; ".join(failures)
        elif not summary["blessed"]:
            summary["reason"] = "Not blessed by the Evaluator."
        else:
            summary["reason"] = "The ServingPusher did not push the blessed model."
    summary["predictions"] = batch_predictions(records, config, summary)
    summary["recipe"] = {"name": config.train.recipe, "weights": config.train.weights}
    summary["chance"] = chance_level(summary.get("metrics", {}).get("accuracy"), summary.get("per_class") or {},
                                     len(summary["label_names"]), config)
    summary["cached_components"] = records.cached_components()
    summary["serving_model_base"] = config.serving_model_dir
    summary["models_config"] = os.path.join(config.serving_base_dir, versioning.MODELS_CONFIG_FILE)
    return summary


def eval_predictions(config: PipelineConfig) -> list[interpretation.EvalPrediction]:
    """The EvalInferrer's prediction of every eval image in the latest run (none when it did not run).
    Read once per run: the summary and the report both use them."""
    records = _RunRecords(config.metadata_path, config.pipeline_name)
    model = records.output("Trainer", "model")
    files = _prediction_logs(records.output(EVAL_INFERRER, "inference_result"))
    if not files or model is None:
        return []
    labels = serving_signature.read_labels(path_utils.serving_model_path(model.uri))
    return interpretation.read_eval_predictions(files, labels)


def batch_predictions(records: _RunRecords, config: PipelineConfig, summary: dict[str, Any]) -> Optional[dict]:
    """Writes the BulkInferrer's answers for ``--predict-dir`` as ``predictions.csv``; what it did, or
    why nothing was scored."""
    if not config.predict_dir:
        return None
    found: dict[str, Any] = {"predict_dir": config.predict_dir, "path": None, "failures_path": None,
                             "scored": 0, "failed": 0, "skipped": None}
    inference = records.output(BULK_INFERRER, "inference_result")
    model_dir = summary["trained_model_dir"]
    files = _prediction_logs(inference)
    if not summary["blessed"] or not files or not model_dir:
        found["skipped"] = ("the model was not blessed, so nothing was scored" if not summary["blessed"]
                            else "the run stopped before batch scoring" if inference is None
                            else "no image in the folder passed validation")
    report_artifact = records.output(PREDICT_VALIDATOR, "report")
    copies, failures = {}, []
    if report_artifact is not None:
        with tf.io.gfile.GFile(os.path.join(report_artifact.uri, validation_report.REPORT_JSON)) as f:
            copies, failures = predictions.copies_and_failures(json.load(f), config.predict_dir)
        found["validation_report"] = os.path.join(report_artifact.uri, validation_report.REPORT_MD)
    if found["skipped"]:
        return found
    labels = serving_signature.read_labels(model_dir)
    scored = predictions.batch_predictions(files, labels, config.train.top_k, config.predict_dir)
    writer = predictions.write_batch_predictions(config.predictions_path, scored, copies, failures)
    found.update(path=writer.path, scored=writer.scored, failed=len(writer.failures),
                 failures_path=writer.failures_path if writer.failures else None)
    return found


def chance_level(accuracy: Optional[float], per_class: dict[str, Any], num_classes: int,
                 config: PipelineConfig) -> Optional[dict[str, Any]]:
    """What guessing scores on the eval split (the larger of 1/classes and the largest
    class's share), and whether ``accuracy`` is within noise of it, in words."""
    if accuracy is None or num_classes < 2:
        return None
    counts = [values.get("eval_examples") or 0 for values in per_class.values()]
    total = sum(counts)
    level = max(1.0 / num_classes, max(counts) / total if total else 0.0)
    # Within a fifth of the way from chance to perfect, or two standard errors of a guesser's
    # accuracy on this many examples, whichever is wider.
    margin = max(0.2 * (1 - level), 2 * math.sqrt(level * (1 - level) / total) if total else 0.0)
    near = accuracy < level + margin
    message = None
    if near:
        how = (f"1 in {num_classes}" if level == 1.0 / num_classes
               else "what always answering the largest class scores")
        causes = []
        if config.train.weights == "none":
            causes.append("training from random weights on few images (pretrained weights, --weights imagenet, "
                          "usually fix this)")
        causes += ["too few epochs for the recipe", "a learning rate too high or too low for it",
                   f"classes that look alike at {config.train.image_size} px, or labels that do not follow "
                   "what the images show"]
        message = (f"Eval accuracy {accuracy:.2f} is near chance ({level:.2f}, {how}): the model has not learned "
                   f"to tell the classes apart. Likely causes: {'; '.join(causes)}.")
    return {"level": round(level, 4), "margin": round(margin, 4), "near_chance": near, "message": message}


def _listed_examples(listing: dict[str, list[str]]) -> int:
    """Every example the validator will judge: files, links leaving the folder, files outside class folders."""
    return sum(len(listing.get(kind, [])) for kind in ("files", "outside_links", "outside_class_folders"))


def component_figure(config: PipelineConfig, component: str) -> str:
    """The figure that matters of a component of the running pipeline, for the console
    line when it ends ("" when it has none)."""
    records = _RunRecords(config.metadata_path, config.pipeline_name)
    if "ExampleGen" in component:
        listing = records.output(component, "listing")
        if listing is None:
            return ""
        listings = artifacts.read_listing(listing.uri)
        return ", ".join(f"{_listed_examples(listing)} files" + ("" if split == "." else f" in {split}")
                         for split, listing in sorted(listings.items()))
    if component in ("ImageValidator", PREDICT_VALIDATOR):
        counts = _validation_counts(records.output(component, "report"))
        if not counts:
            return ""
        splits = ", ".join(f"{split} {count}" for split, count in counts["examples"].items())
        text = f"{counts['files_seen']} files: {counts['examples_used']} used ({splits}), " \
               f"{counts['files_rejected']} rejected"
        return text + (f", {counts['copy_groups']} copy groups" if counts.get("copy_groups") else "")
    if component == "ExampleValidator":
        found = sum(len(messages) for messages in _anomalies(records.output(component, "anomalies")).values())
        return "no anomalies" if not found else f"{found} anomalies (see the run report)"
    if component == "Transform":
        names = _label_names(records.output(component, "transform_graph"))
        if not names:
            return ""
        return f"{len(names)} classes: " + ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    if component == "Trainer":
        run = records.output(component, "model_run")
        path = os.path.join(run.uri, HISTORY_FILE) if run else ""
        if not path or not tf.io.gfile.exists(path):
            return ""
        with tf.io.gfile.GFile(path) as f:
            epochs = json.load(f)["epochs"]
        last = epochs[-1] if epochs else {}
        return f"{len(epochs)} epochs ({config.train.recipe}), eval accuracy {last.get('val_accuracy', 0):.3f}"
    if component == "Evaluator":
        evaluation = records.output(component, "evaluation")
        blessing = records.output(component, "blessing")
        if evaluation is None:
            return ""
        accuracy = _overall_metrics(_candidate_result(evaluation)).get(ACCURACY)
        return (f"accuracy {accuracy:.3f}, " if accuracy is not None else "") + (
            "blessed" if _blessed(blessing) else "not blessed")
    if component == EVAL_INFERRER:
        inference = records.output(component, "inference_result")
        return "every eval image's prediction, for the report" if inference else ""
    if component == BULK_INFERRER:
        inference = records.output(component, "inference_result")
        if inference is None:
            return ""
        return ("scored (predictions.csv after the run)" if _prediction_logs(inference)
                else "nothing scored (the model is not blessed)")
    if component == PUSHER:
        pushed = records.output(component, "pushed_model")
        if _was_pushed(pushed):
            return f"version {pushed.custom_properties['pushed_version'].string_value} pushed"
        return "nothing pushed"
    return ""


def write_summary(config: PipelineConfig, failure: Optional[BaseException] = None,
                  eval_predictions: Sequence[interpretation.EvalPrediction] = ()) -> dict[str, Any]:
    """Writes ``summary.json``, and the model card into the version the run pushed (if any)."""
    summary = build_summary(config, failure, eval_predictions)
    summary["model_card"] = model_card.write_model_card(summary, config)
    with tf.io.gfile.GFile(config.summary_path, "w") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
    return summary


def describe(summary: dict[str, Any], summary_path: str) -> str:
    """A few lines for the terminal."""
    metrics = summary.get("metrics") or {}
    accuracy = metrics.get("accuracy")
    counts = summary.get("counts") or {}
    lines = []
    if counts:
        lines.append(
            f"Images: {counts['files_seen']} files seen, {counts['examples_used']} used, "
            f"{counts['files_rejected']} rejected (report: {counts['validation_report']})"
        )
    recipe = summary.get("recipe") or {}
    lines += [
        f"Eval accuracy: {accuracy:.4f}" if accuracy is not None else "Eval accuracy: n/a",
        f"Classes: {', '.join(summary.get('label_names', []))}",
        f"Training recipe: {recipe.get('name')} (weights: {recipe.get('weights')})",
    ]
    chance = summary.get("chance") or {}
    if chance.get("near_chance"):
        lines.append(f"Warning: {chance['message']}")
    tflite = (summary.get("tflite") or {}).get("models") or {}
    if tflite:
        sample = (summary.get("tflite") or {}).get("eval_sample")
        on = f" (on {sample['images']} eval images of {sample['classes']} classes)" if sample else ""
        lines.append(f"TFLite{on}: " + ", ".join(
            f"{kind} {v['size_bytes'] / 1e6:.1f} MB, accuracy {v.get('accuracy', 0):.3f}, agreement "
            f"{v.get('agreement', 0):.3f}" for kind, v in tflite.items()))
    if summary["pushed_model_dir"]:
        lines.append(f"Pushed model: {summary['pushed_model_dir']}"
                     + (f" (model card: {summary['model_card']})" if summary.get("model_card") else ""))
    else:
        lines.append(f"Model not pushed: {summary['reason']}")
    found = summary.get("predictions")
    if found:
        lines.append(f"Predictions: {found['scored']} images scored, {found['failed']} failed: {found['path']}"
                     if found.get("path") else f"Predictions: not scored ({found['skipped']})")
    lines.append(f"Summary: {summary_path}")
    return "\n".join(lines)
