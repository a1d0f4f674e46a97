"""Exports the trained model as a SavedModel that serves raw image bytes.

Signatures:
  serving_default     image_bytes: string [batch] (JPEG/PNG/GIF/BMP files)
  serving_examples    examples: serialized tf.Example [batch] (TFMA, TF Serving)
  transform_features  examples: serialized tf.Example [batch] -> label_id
                      (Transform's graph; TFMA uses it to read the labels)
The first two return ``probabilities`` [batch, classes], ``class_index`` and
``class_name`` [batch].  Decoding, resizing, normalisation and the label
vocabulary are all inside the SavedModel.
"""

from typing import Dict, List

import tensorflow as tf
import tensorflow_transform as tft

from components import features
from components.trainer import image_ops

SERVING_DEFAULT = "serving_default"
SERVING_EXAMPLES = "serving_examples"
TRANSFORM_FEATURES = "transform_features"
PROBABILITIES = "probabilities"
CLASS_INDEX = "class_index"
CLASS_NAME = "class_name"


def export_serving_model(
    model: tf.keras.Model,
    tft_output: tft.TFTransformOutput,
    label_names: List[str],
    image_size: int,
    export_dir: str,
) -> None:
    # Attached to the model so the SavedModel tracks Transform's graph and vocabulary.
    model.tft_layer = tft_output.transform_features_layer()
    class_names = tf.constant(label_names, dtype=tf.string)

    def classify(images: tf.Tensor) -> Dict[str, tf.Tensor]:
        probabilities = model(images, training=False)
        class_index = tf.argmax(probabilities, axis=-1)
        return {
            PROBABILITIES: probabilities,
            CLASS_INDEX: class_index,
            CLASS_NAME: tf.gather(class_names, class_index),
        }

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve_image_bytes(image_bytes):
        return classify(image_ops.decode_batch(image_bytes, image_size))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(examples):
        parsed = tf.io.parse_example(examples, {features.IMAGE: tf.io.FixedLenFeature([], tf.string)})
        return classify(image_ops.decode_batch(parsed[features.IMAGE], image_size))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def transform_features(examples):
        parsed = tf.io.parse_example(examples, {features.LABEL: tf.io.FixedLenFeature([1], tf.string)})
        return model.tft_layer(parsed)

    tf.saved_model.save(
        model,
        export_dir,
        signatures={
            SERVING_DEFAULT: serve_image_bytes,
            SERVING_EXAMPLES: serve_examples,
            TRANSFORM_FEATURES: transform_features,
        },
    )
