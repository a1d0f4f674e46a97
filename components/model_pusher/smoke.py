"""The smoke test a staged model must pass before it becomes a served version."""

import numpy as np
import tensorflow as tf

from components import serving_signature


def smoke_test(saved_model_dir: str, image_bytes: bytes) -> None:
    """Loads the SavedModel and classifies one image through ``serving_default``.

    Raises ValueError unless the answer is a probability vector over the model's
    own classes and a class name among them.
    """
    labels = serving_signature.read_labels(saved_model_dir)
    signature = tf.saved_model.load(saved_model_dir).signatures[serving_signature.SERVING_DEFAULT]
    outputs = signature(image_bytes=tf.constant([image_bytes]))
    probabilities = outputs[serving_signature.PROBABILITIES].numpy()
    if probabilities.shape != (1, len(labels)) or not np.all(np.isfinite(probabilities)):
        raise ValueError(f"expected 1 x {len(labels)} finite probabilities, got {probabilities}")
    if abs(float(probabilities.sum()) - 1.0) > 1e-3:
        raise ValueError(f"probabilities sum to {probabilities.sum()}, not 1")
    name = outputs[serving_signature.CLASS_NAME].numpy()[0].decode("utf-8")
    if name not in labels:
        raise ValueError(f"class name {name!r} is not one of the model's classes {labels}")
