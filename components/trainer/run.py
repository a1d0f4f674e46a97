"""``run_fn`` for the TFX Trainer: two-phase fine-tuning of ResNet50, then export.

Phase 1 trains the head on a frozen backbone, phase 2 unfreezes the top of the
backbone at a lower learning rate.  Each phase has its own learning-rate
schedule, early stopping (keeping the best weights) and checkpoints; the loss
is label-smoothed and class-weighted.  The run directory gets TensorBoard logs,
``history.json`` (every epoch of both phases), the checkpoints and the
augmentation preview.
"""

import collections
import json
import math
import os
from typing import Optional

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from components import features
from components.trainer import acceleration, augmentation, dataset, export, preview, progress
from components.trainer import model as model_lib
from components.trainer import weights as weights_lib
from components.trainer.params import FROM_SCRATCH, TrainParams

PREVIEW_IMAGES = 8
PREVIEW_VERSIONS = 5
HISTORY_FILE = "history.json"
CHECKPOINT_DIR = "checkpoints"


def class_counts(file_patterns) -> dict[str, int]:
    """Examples per label in the given example files (reads the labels only)."""
    files = tf.io.gfile.glob(file_patterns)
    records = tf.data.TFRecordDataset(files, compression_type=dataset.compression_of(file_patterns))
    labels = records.batch(1024).map(
        lambda batch: tf.io.parse_example(batch, {features.LABEL: tf.io.FixedLenFeature([], tf.string)})[
            features.LABEL])
    counts = collections.Counter()
    for batch in dataset.without_autotune_thread(labels):
        counts.update(label.decode("utf-8") for label in batch.numpy())
    return dict(counts)


def balanced_class_weights(counts: dict[str, int], label_names: list[str]) -> dict[int, float]:
    """Weight n / (classes * count) per class index: every class adds up to the same total."""
    total = sum(counts.get(name, 0) for name in label_names)
    return {index: total / (len(label_names) * counts[name]) if counts.get(name) else 0.0
            for index, name in enumerate(label_names)}


def learning_rate(peak: float, steps: int, params: TrainParams):
    """A constant rate, or a linear warm-up to ``peak`` then cosine decay over the phase."""
    if params.lr_schedule == "constant" or steps < 2:
        return peak
    warmup = int(steps * params.warmup_fraction)
    return tf.keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=steps - warmup,
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def _fit(model, train_batches, eval_ds, phase: str, peak_rate: float, epochs: range, steps_per_epoch: int,
         params: TrainParams, plan, run_dir: str) -> list[dict]:
    # One-hot labels throughout: mixup and cutmix make soft ones.
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate(peak_rate, steps_per_epoch * len(epochs), params)),
        loss=tf.keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing),
        metrics=[tf.keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=plan.xla,
    )
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir=run_dir),
        tf.keras.callbacks.ModelCheckpoint(
            os.path.join(run_dir, CHECKPOINT_DIR, phase, "best"),
            monitor="val_loss", save_best_only=True, save_weights_only=True,
        ),
    ]
    shown = "scratch" if params.recipe == FROM_SCRATCH else {"finetune": "fine-tune"}.get(phase, phase)
    events = progress.ProgressEvents(shown, params.head_epochs + params.finetune_epochs, steps_per_epoch,
                                     params.batch_size)
    callbacks.append(tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=events.on_epoch_begin, on_train_batch_end=events.on_train_batch_end,
        on_epoch_end=events.on_epoch_end))
    if params.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True, verbose=1))
    history = model.fit(
        train_batches,
        steps_per_epoch=steps_per_epoch,
        validation_data=eval_ds,
        initial_epoch=epochs.start,
        epochs=epochs.stop,
        callbacks=callbacks,
        verbose=2,
    )
    return [
        {"phase": phase, "epoch": epoch + 1, **{name: float(values[i]) for name, values in history.history.items()}}
        for i, epoch in enumerate(history.epoch)
    ]


def _write_augmentation_preview(train_files, params: TrainParams, run_dir: str) -> None:
    """Originals beside augmented versions, as a PNG and a TensorBoard image."""
    if not augmentation.is_active(params.augment):
        return
    # A seeded shuffle over a few batches' worth: the files are often in class order.
    sample = dataset.decoded_images(train_files, params, shuffle_files=True).shuffle(
        8 * PREVIEW_IMAGES, seed=params.seed).take(PREVIEW_IMAGES)
    images = tf.stack([image for image, _ in sample])
    grid = preview.preview_grid(images, params.augment, PREVIEW_VERSIONS, params.seed)
    path = os.path.join(run_dir, preview.PREVIEW_FILE)
    preview.write_png(grid, path)
    with tf.summary.create_file_writer(os.path.join(run_dir, "augmentation")).as_default():
        tf.summary.image("augmentation_preview", grid[None], step=0)
    logging.info("Augmentation preview (preset %s): %s", params.augment.preset, path)


def _initial_weights(model, label_names, params: TrainParams, base_model: Optional[str]) -> None:
    if not params.warm_start:
        return
    if not base_model:
        logging.info("Warm start asked for, but there is no blessed model yet: starting from --weights.")
        return
    copied = model_lib.warm_start(model, base_model, label_names, params)
    logging.info("Warm-started from %s: %s.", base_model, copied)


def run_fn(fn_args: FnArgs) -> None:
    """Trains on ``fn_args.train_files``, validates on ``eval_files``, exports the SavedModel."""
    params = TrainParams.from_custom_config(fn_args.custom_config or {})
    tf.keras.utils.set_random_seed(params.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    label_names = [name.decode("utf-8") for name in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    if len(label_names) < 2:
        raise ValueError(f"Need at least 2 classes to train a classifier, found {label_names}.")
    counts = class_counts(fn_args.train_files)
    logging.info("Training on %d classes: %s", len(label_names), {name: counts.get(name, 0) for name in label_names})
    class_weight = balanced_class_weights(counts, label_names) if params.class_weights == "balanced" else None
    if class_weight:
        logging.info("Class weights: %s", {name: round(class_weight[i], 3) for i, name in enumerate(label_names)})
    steps_per_epoch = max(1, math.ceil(sum(counts.values()) / params.batch_size))

    num_classes = len(label_names)
    # The batches carry the class weights themselves (Keras's class_weight would wrap the
    # dataset in a map of its own at every fit). One repeated dataset serves both phases:
    # one iterator per fit over all its epochs (a finite dataset would make Keras start one
    # each epoch), and TensorFlow prepares a dataset for reading only once, not per fit.
    train_batches = dataset.make_dataset(
        fn_args.train_files, tft_output, params, training=True, num_classes=num_classes,
        class_weights=[class_weight[i] for i in range(num_classes)] if class_weight else None,
    ).repeat()
    eval_ds = dataset.make_dataset(fn_args.eval_files, tft_output, params, training=False, num_classes=num_classes)
    _write_augmentation_preview(fn_args.train_files, params, fn_args.model_run_dir)
    weights = weights_lib.resolve_weights(params.weights)
    # Pretrained (ImageNet, a weights file, or a warm start): BatchNorm keeps its statistics.
    pretrained = weights is not None or bool(params.warm_start and fn_args.base_model)
    plan = acceleration.detect(params.mixed_precision, params.xla, params.distribution)

    history = []
    strategy = acceleration.create_strategy(plan)
    logging.info("%d replica(s) in sync.", strategy.num_replicas_in_sync)
    with acceleration.precision_policy(plan), strategy.scope():
        model, backbone = model_lib.build_model(num_classes, params, weights, pretrained=pretrained)
        _initial_weights(model, label_names, params, fn_args.base_model)
        fit = {"steps_per_epoch": steps_per_epoch, "params": params, "plan": plan, "run_dir": fn_args.model_run_dir}
        epoch = 0
        if params.head_epochs:
            model_lib.freeze_backbone(backbone)
            logging.info("Phase 1: %d epoch(s) training the head on a frozen backbone.", params.head_epochs)
            history += _fit(model, train_batches, eval_ds, "head", params.head_learning_rate,
                            range(params.head_epochs), **fit)
            epoch = params.head_epochs
        if params.finetune_epochs and params.unfreeze_layers == 0:
            logging.warning("Skipping phase 2: finetune_epochs=%d but unfreeze_layers=0.", params.finetune_epochs)
        elif params.finetune_epochs:
            unfrozen = model_lib.unfreeze_top_layers(
                backbone, params.unfreeze_layers, keep_batchnorm_frozen=pretrained
            )
            logging.info(
                "Phase 2: %d epoch(s) %s %d backbone layers at learning rate %g (recipe %s).",
                params.finetune_epochs, "training" if params.recipe == FROM_SCRATCH else "fine-tuning", unfrozen,
                params.finetune_learning_rate, params.recipe,
            )
            history += _fit(model, train_batches, eval_ds, "finetune", params.finetune_learning_rate,
                            range(epoch, epoch + params.finetune_epochs), **fit)

        with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir, HISTORY_FILE), "w") as f:
            json.dump({"label_names": label_names, "class_counts": counts, "acceleration": plan.describe(),
                       "replicas": strategy.num_replicas_in_sync, "epochs": history}, f, indent=1)
        export.export_serving_model(model, tft_output, label_names, params.image_size, fn_args.serving_model_dir,
                                    top_k=params.top_k, max_pixels=params.max_serving_pixels)
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
