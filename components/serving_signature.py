"""The served model's contract: signature names, input and output keys, and the
class names beside it.  The Trainer's export writes it; the pusher's smoke test,
the pipeline and any client read it."""

import os

import tensorflow as tf

SERVING_DEFAULT = "serving_default"  # image_bytes: string [batch] (JPEG/PNG/GIF/BMP files)
SERVING_EXAMPLES = "serving_examples"  # examples: serialized tf.Example [batch] (TFMA, TF Serving)
TRANSFORM_FEATURES = "transform_features"  # Transform's graph: examples -> label_id
# examples -> probabilities and class_index only: TFX's BulkInferrer (tfx_bsl's RunInference
# cannot write a string output holding one value per example, such as class_name).
SCORE_EXAMPLES = "score_examples"
IMAGE_BYTES = "image_bytes"
EXAMPLES = "examples"
PROBABILITIES = "probabilities"
CLASS_INDEX = "class_index"
CLASS_NAME = "class_name"
TOP_K_CLASS_NAMES = "top_k_class_names"
TOP_K_PROBABILITIES = "top_k_probabilities"
# In the SavedModel's assets: the class names, one per line, in class index order.
LABELS_FILE = "labels.txt"


def read_labels(saved_model_dir: str) -> list[str]:
    """The class names of an exported model, in class index order."""
    with tf.io.gfile.GFile(os.path.join(saved_model_dir, "assets", LABELS_FILE)) as f:
        return [line.rstrip("\n") for line in f]
