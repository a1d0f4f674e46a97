"""Exports the trained model as a SavedModel that serves raw image bytes.

Signatures:
  serving_default     image_bytes: string [batch] (JPEG/PNG/GIF/BMP files)
  serving_examples    examples: serialized tf.Example [batch] (TFMA, TF Serving)
  transform_features  examples: serialized tf.Example [batch] -> label_id
                      (Transform's graph; TFMA uses it to read the labels)
  score_examples      examples: serialized tf.Example [batch] -> probabilities,
                      class_index (BulkInferrer: no string outputs)
The first two return ``probabilities`` [batch, classes], ``class_index`` and
``class_name`` [batch], and the ``top_k_class_names`` / ``top_k_probabilities``
[batch, k].  Decoding, resizing, normalisation and the label vocabulary are all
inside the SavedModel; ``assets/labels.txt`` lists the class names in index
order.  Bytes that are not a JPEG, PNG, GIF or BMP image, or that claim too many
pixels, fail with InvalidArgument before anything is decoded.

The SavedModel is a plain ``tf.Module``: the signatures, the model's variables
(``model.exported_variables``: sorted by name, so a twin of the model restores
them for a warm start), Transform's layer and the labels.  Not a Keras
SavedModel: Keras would trace and save every layer's call functions, which
costs most of an export and of every load, and serving reads only signatures.
"""

import os
import tempfile

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.image_bytes import decode_batch
from components.serving_signature import (
    CLASS_INDEX,
    CLASS_NAME,
    EXAMPLES,
    IMAGE_BYTES,
    LABELS_FILE,
    PROBABILITIES,
    SCORE_EXAMPLES,
    SERVING_DEFAULT,
    SERVING_EXAMPLES,
    TOP_K_CLASS_NAMES,
    TOP_K_PROBABILITIES,
    TRANSFORM_FEATURES,
)
from components.trainer import model as model_lib
from components.trainer.params import DEFAULT_MAX_SERVING_PIXELS


def export_serving_model(
    model: tf.keras.Model,
    tft_output: tft.TFTransformOutput,
    label_names: list[str],
    image_size: int,
    export_dir: str,
    top_k: int = 5,
    max_pixels: int = DEFAULT_MAX_SERVING_PIXELS,
) -> None:
    served = tf.Module()
    setattr(served, model_lib.EXPORTED_VARIABLES, model_lib.exported_variables(model))
    # Tracked so the SavedModel holds Transform's graph and vocabulary.
    served.tft_layer = tft_output.transform_features_layer()
    class_names = tf.constant(label_names, dtype=tf.string)
    k = min(top_k, len(label_names))
    labels_dir = tempfile.TemporaryDirectory()  # saving copies the file into assets/
    with open(os.path.join(labels_dir.name, LABELS_FILE), "w", encoding="utf-8") as f:
        f.writelines(name + "\n" for name in label_names)
    served.labels_asset = tf.saved_model.Asset(os.path.join(labels_dir.name, LABELS_FILE))

    # Traced once, called by every signature: tracing ResNet50 is most of an export's time.
    @tf.function(input_signature=[tf.TensorSpec([None, image_size, image_size, 3], tf.float32)])
    def classify(images: tf.Tensor) -> dict[str, tf.Tensor]:
        probabilities = tf.cast(model(images, training=False), tf.float32)
        class_index = tf.argmax(probabilities, axis=-1)
        top_probabilities, top_indices = tf.math.top_k(probabilities, k=k)
        return {
            PROBABILITIES: probabilities,
            CLASS_INDEX: class_index,
            CLASS_NAME: tf.gather(class_names, class_index),
            TOP_K_PROBABILITIES: top_probabilities,
            TOP_K_CLASS_NAMES: tf.gather(class_names, top_indices),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES)])
    def serve_image_bytes(image_bytes):
        return classify(decode_batch(image_bytes, image_size, max_pixels))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, {features.IMAGE: tf.io.FixedLenFeature([], tf.string)})
        return classify(decode_batch(parsed[features.IMAGE], image_size, max_pixels))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)])
    def score_examples(examples):
        answers = serve_examples(examples)
        return {PROBABILITIES: answers[PROBABILITIES], CLASS_INDEX: answers[CLASS_INDEX]}

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES)])
    def transform_features(examples):
        parsed = tf.io.parse_example(examples, {features.LABEL: tf.io.FixedLenFeature([1], tf.string)})
        return served.tft_layer(parsed)

    with labels_dir:
        tf.saved_model.save(
            served,
            export_dir,
            signatures={
                SERVING_DEFAULT: serve_image_bytes,
                SERVING_EXAMPLES: serve_examples,
                TRANSFORM_FEATURES: transform_features,
                SCORE_EXAMPLES: score_examples,
            },
        )
