"""``run_fn`` for the TFX Trainer: train the head, fine-tune, export.

It reads like the Keras transfer-learning recipe: the data (class counts and
weights, the training and evaluation datasets, an augmentation preview), the
model (ResNet50 with a new head, from ImageNet weights, a weights file, a warm
start or random weights), the two phases (``phases.py``: the head on a frozen
backbone, then the top of the backbone at a lower rate; from scratch, every
layer in one phase), then ``history.json`` and the SavedModel that serves raw
image bytes (``export.py``), with its TFLite twins beside it, measured on the
eval split (``tflite_export.py``).  The run directory gets TensorBoard logs, the
history, the checkpoints and the preview.
"""

import json
import math
import os
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from components import features
from components.example_records import files_size
from components.trainer import acceleration, dataset, export, phases, preview, tflite_export
from components.trainer import model as model_lib
from components.trainer import weights as weights_lib
from components.trainer.class_balance import balanced_class_weights, class_counts
from components.trainer.params import TrainParams

HISTORY_FILE = "history.json"


def run_fn(fn_args: FnArgs) -> None:
    """Trains on ``fn_args.train_files``, validates on ``eval_files``, exports the SavedModel."""
    params = TrainParams.from_custom_config(fn_args.custom_config or {})
    tf.keras.utils.set_random_seed(params.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    label_names = _label_names(tft_output)
    counts = class_counts(fn_args.train_files)
    logging.info("Training on %d classes: %s", len(label_names), {name: counts.get(name, 0) for name in label_names})
    input_plan = dataset.plan_input(params, sum(counts.values()), sum(class_counts(fn_args.eval_files).values()),
                                    files_size(fn_args.train_files))
    logging.info("Input: %s.", input_plan.describe())
    plan = acceleration.detect(params.mixed_precision, params.xla, params.distribution)
    setup = phases.PhaseSetup(
        *_datasets(fn_args, tft_output, params, label_names, counts, input_plan),
        steps_per_epoch=max(1, math.ceil(sum(counts.values()) / params.batch_size)),
        params=params, plan=plan, run_dir=fn_args.model_run_dir,
    )
    preview_sample = preview.write_training_preview(fn_args.train_files, params, fn_args.model_run_dir)
    weights = weights_lib.resolve_weights(params.weights)
    # Pretrained (ImageNet, a weights file, or a warm start): BatchNorm keeps its statistics.
    pretrained = weights is not None or bool(params.warm_start and fn_args.base_model)

    strategy = acceleration.create_strategy(plan)
    logging.info("%d replica(s) in sync.", strategy.num_replicas_in_sync)
    with acceleration.precision_policy(plan), strategy.scope():
        model, backbone = model_lib.build_model(len(label_names), params, weights, pretrained=pretrained)
        _warm_start(model, label_names, params, fn_args.base_model)
        history = phases.train_head(model, backbone, setup)
        history += phases.fine_tune(model, backbone, setup, pretrained)
        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
            json.dump({"label_names": label_names, "class_counts": counts, "acceleration": plan.describe(),
                       "replicas": strategy.num_replicas_in_sync, "input": input_plan.describe(),
                       "preview_sample": preview_sample, "epochs": history}, f, indent=1)
        export.export_serving_model(model, tft_output, label_names, params.image_size, fn_args.serving_model_dir,
                                    top_k=params.top_k, max_pixels=params.max_serving_pixels)
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
    tflite_export.export_tflite(
        model, lambda: model_lib.build_model(len(label_names), params, None, pretrained=pretrained)[0], params,
        label_names, fn_args.train_files, fn_args.eval_files, fn_args.serving_model_dir,
    )


def _label_names(tft_output: tft.TFTransformOutput) -> list[str]:
    label_names = [name.decode("utf-8") for name in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    if len(label_names) < 2:
        raise ValueError(f"Need at least 2 classes to train a classifier, found {label_names}.")
    return label_names


def _datasets(fn_args: FnArgs, tft_output, params: TrainParams, label_names: list[str], counts: dict[str, int],
              input_plan: dataset.InputPlan):
    """The training batches (repeated, class weights carried in them) and the evaluation batches."""
    class_weights = balanced_class_weights(counts, label_names) if params.class_weights == "balanced" else None
    if class_weights:
        logging.info("Class weights: %s", {name: round(w, 3) for name, w in zip(label_names, class_weights)})
    # The batches carry the class weights themselves (Keras's class_weight would wrap the
    # dataset in a map of its own at every fit). One repeated dataset serves both phases:
    # one iterator per fit over all its epochs (a finite dataset would make Keras start one
    # each epoch), and TensorFlow prepares a dataset for reading only once, not per fit.
    train_batches = dataset.make_dataset(
        fn_args.train_files, tft_output, params, training=True, num_classes=len(label_names),
        class_weights=class_weights, plan=input_plan,
    ).repeat()
    eval_batches = dataset.make_dataset(fn_args.eval_files, tft_output, params, training=False,
                                        num_classes=len(label_names), plan=input_plan)
    return train_batches, eval_batches


def _warm_start(model, label_names, params: TrainParams, base_model: Optional[str]) -> None:
    if not params.warm_start:
        return
    if not base_model:
        logging.info("Warm start asked for, but there is no blessed model yet: starting from --weights.")
        return
    copied = model_lib.warm_start(model, base_model, label_names, params)
    logging.info("Warm-started from %s: %s.", base_model, copied)
