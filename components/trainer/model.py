"""The classifier: a Keras ResNet50 backbone without top, plus a small head."""

import os
from typing import Optional

import tensorflow as tf
from tensorflow.python.autograph.core import config as autograph_config
from tensorflow.python.autograph.core import config_lib as autograph_rules

from components.serving_signature import read_labels
from components.trainer.params import TrainParams


def leave_keras_to_autograph_unconverted() -> None:
    """AutoGraph has a rule to leave Keras' own code as it is, for the package named ``keras``.
    Keras 2 is now the package ``tf_keras``, which no rule names: AutoGraph rewrites its internals
    on every call inside a traced function (``fit``'s train and test steps, the export, TFLite),
    which makes tracing ResNet50 several times slower.  The same rule, for ``tf_keras``."""
    if not any(isinstance(rule, autograph_rules.DoNotConvert) and rule.matches("tf_keras")
               for rule in autograph_config.CONVERSION_RULES):
        autograph_config.CONVERSION_RULES = (autograph_rules.DoNotConvert("tf_keras"),
                                             *autograph_config.CONVERSION_RULES)


leave_keras_to_autograph_unconverted()

BACKBONE_NAME = "resnet50"
# The exported SavedModel's attribute holding the model's variables (export.py).
EXPORTED_VARIABLES = "model_variables"
SCRATCH_BATCHNORM_MOMENTUM = 0.9


def build_model(
    num_classes: int, params: TrainParams, weights: Optional[str], pretrained: Optional[bool] = None
) -> tuple[tf.keras.Model, tf.keras.Model]:
    """Returns ``(model, backbone)``; the model takes float RGB in [0, 255].

    With pretrained weights (``weights`` given, or ``pretrained`` when they come
    from a warm start) the backbone is always called in inference mode, so its
    BatchNorm layers keep their learned statistics even when unfrozen for
    fine-tuning (the transfer-learning recipe).  From random init there are no
    statistics to keep, so BatchNorm trains normally.
    """
    pretrained = weights is not None if pretrained is None else pretrained
    size = params.image_size
    backbone = tf.keras.applications.ResNet50(
        include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg"
    )
    backbone._name = BACKBONE_NAME  # pylint: disable=protected-access
    if not pretrained:
        # From scratch on a short schedule, BatchNorm's moving statistics must
        # catch up within a few hundred steps; Keras' 0.99 momentum lags far behind.
        for layer in backbone.layers:
            if isinstance(layer, tf.keras.layers.BatchNormalization):
                layer.momentum = SCRATCH_BATCHNORM_MOMENTUM
    inputs = tf.keras.Input(shape=(size, size, 3), dtype=tf.float32, name="image")
    x = preprocess(inputs)
    x = backbone(x, training=False) if pretrained else backbone(x)
    x = tf.keras.layers.Dropout(params.dropout, seed=params.seed)(x)
    # float32 output: stable softmax whatever the compute precision.
    outputs = tf.keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities")(x)
    return tf.keras.Model(inputs, outputs, name="image_classifier"), backbone


def preprocess(images: tf.Tensor) -> tf.Tensor:
    """RGB in [0, 255] to what the backbone takes (ResNet50's: BGR, ImageNet means off)."""
    return tf.keras.applications.resnet50.preprocess_input(images)


def freeze_backbone(backbone: tf.keras.Model) -> None:
    backbone.trainable = False


def unfreeze_top_layers(backbone: tf.keras.Model, count: int, keep_batchnorm_frozen: bool) -> int:
    """Makes the top ``count`` layers (-1: all) trainable and returns how many.

    ``keep_batchnorm_frozen`` leaves BatchNorm layers frozen, as pretrained
    statistics and scales should stay put while fine-tuning.
    """
    backbone.trainable = True
    layers = backbone.layers
    first_trainable = 0 if count == -1 else max(len(layers) - count, 0)
    unfrozen = 0
    for index, layer in enumerate(layers):
        is_batchnorm = isinstance(layer, tf.keras.layers.BatchNormalization)
        trainable = index >= first_trainable and not (keep_batchnorm_frozen and is_batchnorm)
        layer.trainable = trainable
        unfrozen += int(trainable)
    return unfrozen


def exported_variables(model: tf.keras.Model) -> list[tf.Variable]:
    """Every variable of ``model``, by name: the same list for any model ``build_model`` makes
    with the same class count, whichever of its layers are frozen (Keras lists trainable
    weights first)."""
    weights = sorted(model.weights, key=lambda variable: variable.name)
    names = [variable.name for variable in weights]
    if len(set(names)) != len(names):
        raise ValueError(f"Variable names repeat in {model.name}; they are how an export is read back.")
    return weights


def load_exported(model_dir: str, params: TrainParams) -> tuple[tf.keras.Model, tf.keras.Model, list[str]]:
    """``(model, backbone, labels)``: a Keras twin of an exported model with its weights.

    The export holds ``exported_variables`` (a model exported before as a Keras
    SavedModel holds the Keras object graph; both are read).
    """
    labels = read_labels(model_dir)
    twin, backbone = build_model(len(labels), params, weights=None)
    path = os.path.join(model_dir, "variables", "variables")
    keys = [name for name, _ in tf.train.list_variables(path)]
    if any(key.startswith(EXPORTED_VARIABLES + "/") for key in keys):
        checkpoint = tf.train.Checkpoint(**{EXPORTED_VARIABLES: exported_variables(twin)})
    else:
        checkpoint = tf.train.Checkpoint(root=twin)
    checkpoint.read(path).expect_partial().assert_existing_objects_matched()
    return twin, backbone, labels


def warm_start(model: tf.keras.Model, base_model_dir: str, label_names: list[str], params: TrainParams) -> str:
    """Copies a previously exported model's weights into ``model``; returns what was copied.

    The backbone is always copied; the head only when the classes are the same,
    in the same order.
    """
    twin, twin_backbone, base_labels = load_exported(base_model_dir, params)
    backbone = model.get_layer(BACKBONE_NAME)
    backbone.set_weights(twin_backbone.get_weights())
    if base_labels != list(label_names):
        return f"backbone only (the classes changed from {base_labels} to {list(label_names)})"
    model.set_weights(twin.get_weights())
    return "backbone and head"
