"""Where the model looked: Grad-CAM heat maps on the backbone's last convolution, in TensorFlow.

Grad-CAM (Selvaraju et al., 2017): the gradient of a class's probability with
respect to the last convolutional feature map, averaged over each channel,
weighs that channel; the weighted sum, with negatives cut to zero, is a coarse
map (7x7 at 224 px) of the regions that raised the class.  It runs on a Keras
twin of the trained model (``model.load_exported``), on images decoded and
resized by the same function serving uses, so it explains the served model.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from components.image_bytes import decode_and_resize
from components.trainer import model as model_lib

# ResNet50's last convolution block: its output is the feature map global pooling reads.
LAST_CONV = "conv5_block3_out"
HEAD = "probabilities"


class GradCam:
    """Heat maps of a trained model: ``maps(images, classes)``."""

    def __init__(self, model: tf.keras.Model, backbone: tf.keras.Model, image_size: int):
        self.image_size = image_size
        self._features = tf.keras.Model(backbone.inputs, [backbone.get_layer(LAST_CONV).output, backbone.output])
        self._head = model.get_layer(HEAD)

    def images(self, encoded: Sequence[bytes]) -> np.ndarray:
        """The model's view of each file: decoded and resized as serving does, [n, size, size, 3] in 0-255."""
        return np.stack([decode_and_resize(tf.constant(data), self.image_size).numpy() for data in encoded])

    def maps(self, images: np.ndarray, classes: Sequence[int]) -> np.ndarray:
        """[n, size, size] heat maps in [0, 1] of ``classes[i]`` on ``images[i]``."""
        inputs = model_lib.preprocess(tf.constant(images, tf.float32))
        with tf.GradientTape() as tape:
            feature_map, pooled = self._features(inputs, training=False)
            probabilities = self._head(pooled)
            scores = tf.gather(probabilities, tf.constant(list(classes), tf.int32), batch_dims=1)
        gradients = tape.gradient(scores, feature_map)
        weights = tf.reduce_mean(gradients, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(tf.cast(weights * feature_map, tf.float32), axis=-1))
        peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
        cam = tf.math.divide_no_nan(cam, peak)
        upsampled = tf.image.resize(cam[..., None], (self.image_size, self.image_size), method="bilinear")
        return upsampled[..., 0].numpy()


def overlay(image: np.ndarray, heat_map: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``heat_map`` in the 'jet' colours over ``image`` (uint8 RGB)."""
    import matplotlib  # pylint: disable=import-outside-toplevel

    colours = matplotlib.colormaps["jet"](heat_map)[..., :3] * 255.0
    return np.clip((1 - alpha) * image + alpha * colours, 0, 255).astype(np.uint8)
