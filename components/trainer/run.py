"""``run_fn`` for the TFX Trainer: two-phase fine-tuning of ResNet50, then export."""

import os

import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx.components.trainer.fn_args_utils import FnArgs

from components import features
from components.trainer import augment, dataset, export, model as model_lib, preview, weights as weights_lib
from components.trainer.params import TrainParams

PREVIEW_IMAGES = 8
PREVIEW_VERSIONS = 5


def _fit(model, train_ds, eval_ds, learning_rate, first_epoch, last_epoch, log_dir):
    # One-hot labels throughout: mixup and cutmix make soft ones.
    model.compile(
        optimizer=tf.keras.optimizers.Adam(learning_rate),
        loss=tf.keras.losses.CategoricalCrossentropy(),
        metrics=[tf.keras.metrics.CategoricalAccuracy(name="accuracy")],
    )
    return model.fit(
        train_ds,
        validation_data=eval_ds,
        initial_epoch=first_epoch,
        epochs=last_epoch,
        callbacks=[tf.keras.callbacks.TensorBoard(log_dir=log_dir)],
        verbose=2,
    )


def _write_augmentation_preview(train_files, params: TrainParams, run_dir: str) -> None:
    """Originals beside augmented versions, as a PNG and a TensorBoard image."""
    if not augment.is_active(params.augment):
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


def run_fn(fn_args: FnArgs) -> None:
    """Trains on ``fn_args.train_files``, validates on ``eval_files``, exports the SavedModel."""
    params = TrainParams.from_custom_config(fn_args.custom_config or {})
    tf.keras.utils.set_random_seed(params.seed)
    tft_output = tft.TFTransformOutput(fn_args.transform_output)
    label_names = [name.decode("utf-8") for name in tft_output.vocabulary_by_name(features.LABEL_VOCABULARY)]
    if len(label_names) < 2:
        raise ValueError(f"Need at least 2 classes to train a classifier, found {label_names}.")
    logging.info("Training on %d classes: %s", len(label_names), label_names)

    num_classes = len(label_names)
    train_ds = dataset.make_dataset(fn_args.train_files, tft_output, params, training=True, num_classes=num_classes)
    eval_ds = dataset.make_dataset(fn_args.eval_files, tft_output, params, training=False, num_classes=num_classes)
    _write_augmentation_preview(fn_args.train_files, params, fn_args.model_run_dir)
    weights = weights_lib.resolve_weights(params.weights)
    model, backbone = model_lib.build_model(len(label_names), params, weights)

    epoch = 0
    if params.head_epochs:
        model_lib.freeze_backbone(backbone)
        logging.info("Phase 1: %d epoch(s) training the head on a frozen backbone.", params.head_epochs)
        _fit(model, train_ds, eval_ds, params.head_learning_rate, 0, params.head_epochs, fn_args.model_run_dir)
        epoch = params.head_epochs
    if params.finetune_epochs and params.unfreeze_layers == 0:
        logging.warning("Skipping phase 2: finetune_epochs=%d but unfreeze_layers=0.", params.finetune_epochs)
    elif params.finetune_epochs:
        unfrozen = model_lib.unfreeze_top_layers(
            backbone, params.unfreeze_layers, keep_batchnorm_frozen=weights is not None
        )
        logging.info(
            "Phase 2: %d epoch(s) fine-tuning %d backbone layers at learning rate %g.",
            params.finetune_epochs, unfrozen, params.finetune_learning_rate,
        )
        _fit(
            model, train_ds, eval_ds, params.finetune_learning_rate,
            epoch, epoch + params.finetune_epochs, fn_args.model_run_dir,
        )

    export.export_serving_model(model, tft_output, label_names, params.image_size, fn_args.serving_model_dir)
    logging.info("Exported the serving model to %s", fn_args.serving_model_dir)
