"""The training phases: the head on a frozen backbone, then fine-tuning (or, from
scratch, every layer in one phase).  Each phase compiles the model with its own
learning-rate schedule and runs ``fit`` with early stopping, TensorBoard and the
console's progress events.  No checkpoint is written: early stopping keeps a
phase's best weights in memory, a rerun of the Trainer starts afresh (TFX), and
a warm start reads the blessed SavedModel, so checkpoints would only fill the
disk (three copies of ResNet50's weights and Adam's slots per phase)."""

import dataclasses

import tensorflow as tf
from absl import logging

from components import progress
from components.trainer import acceleration
from components.trainer import model as model_lib
from components.trainer.params import FROM_SCRATCH, TrainParams

HEAD, FINETUNE = "head", "finetune"


@dataclasses.dataclass(frozen=True)
class PhaseSetup:
    """What every phase shares: the data, the settings and where its logs go."""

    train_batches: tf.data.Dataset  # repeated: one iterator per fit
    eval_batches: tf.data.Dataset
    steps_per_epoch: int
    params: TrainParams
    plan: acceleration.AccelerationPlan
    run_dir: str


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


def train_head(model: tf.keras.Model, backbone: tf.keras.Model, setup: PhaseSetup) -> list[dict]:
    """Phase 1: the head learns on a frozen backbone.  Returns its epochs' history."""
    params = setup.params
    if not params.head_epochs:
        return []
    model_lib.freeze_backbone(backbone)
    logging.info("Phase 1: %d epoch(s) training the head on a frozen backbone.", params.head_epochs)
    return _fit(model, HEAD, params.head_learning_rate, range(params.head_epochs), setup)


def fine_tune(model: tf.keras.Model, backbone: tf.keras.Model, setup: PhaseSetup, pretrained: bool) -> list[dict]:
    """Phase 2: the top ``unfreeze_layers`` of the backbone learn too, at their own rate
    (pretrained BatchNorm layers keep their statistics).  Returns its epochs' history."""
    params = setup.params
    if params.finetune_epochs and params.unfreeze_layers == 0:
        logging.warning("Skipping phase 2: finetune_epochs=%d but unfreeze_layers=0.", params.finetune_epochs)
        return []
    if not params.finetune_epochs:
        return []
    unfrozen = model_lib.unfreeze_top_layers(backbone, params.unfreeze_layers, keep_batchnorm_frozen=pretrained)
    logging.info(
        "Phase 2: %d epoch(s) %s %d backbone layers at learning rate %g (recipe %s).",
        params.finetune_epochs, "training" if params.recipe == FROM_SCRATCH else "fine-tuning", unfrozen,
        params.finetune_learning_rate, params.recipe,
    )
    first = params.head_epochs
    return _fit(model, FINETUNE, params.finetune_learning_rate, range(first, first + params.finetune_epochs), setup)


def _fit(model, phase: str, peak_rate: float, epochs: range, setup: PhaseSetup) -> list[dict]:
    params = setup.params
    # One-hot labels throughout: mixup and cutmix make soft ones.
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate(peak_rate, setup.steps_per_epoch * len(epochs), params)),
        loss=tf.keras.losses.CategoricalCrossentropy(label_smoothing=params.label_smoothing),
        metrics=[tf.keras.metrics.CategoricalAccuracy(name="accuracy")],
        jit_compile=setup.plan.xla,
    )
    history = model.fit(
        setup.train_batches,
        steps_per_epoch=setup.steps_per_epoch,
        validation_data=setup.eval_batches,
        initial_epoch=epochs.start,
        epochs=epochs.stop,
        callbacks=_callbacks(phase, setup),
        verbose=2,
    )
    return [
        {"phase": phase, "epoch": epoch + 1, **{name: float(values[i]) for name, values in history.history.items()}}
        for i, epoch in enumerate(history.epoch)
    ]


def _callbacks(phase: str, setup: PhaseSetup) -> list[tf.keras.callbacks.Callback]:
    params = setup.params
    shown = "scratch" if params.recipe == FROM_SCRATCH else {FINETUNE: "fine-tune"}.get(phase, phase)
    events = progress.ProgressEvents(shown, params.head_epochs + params.finetune_epochs, setup.steps_per_epoch,
                                     params.batch_size)
    callbacks = [
        tf.keras.callbacks.TensorBoard(log_dir=setup.run_dir),
        tf.keras.callbacks.LambdaCallback(
            on_epoch_begin=events.on_epoch_begin, on_train_batch_end=events.on_train_batch_end,
            on_epoch_end=events.on_epoch_end),
    ]
    if params.early_stopping_patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=params.early_stopping_patience, restore_best_weights=True, verbose=1))
    return callbacks
