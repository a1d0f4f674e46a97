"""Gaussian blur, with a sigma drawn for each image: a separable kernel per image,
compiled by XLA."""

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def active(p: AugmentParams) -> bool:
    return p.blur_prob > 0 and p.blur > 0


# Shifted copies rather than a depthwise convolution: TensorFlow 2.16's CPU
# DepthwiseConv2dNative crashes, hangs or returns wrong values once a filter row
# has 13 or more taps over many channels (a blur sigma from about 1.7 at batch 32).
@tf.function(jit_compile=True)
def _separable_blur(images, kernel):
    """``images`` [b, h, w, 3] convolved along x, then y, with ``kernel`` [b, taps]
    (one odd-length kernel per image), borders mirrored; clipped to [0, 255]."""
    taps = kernel.shape[1]
    radius = taps // 2
    shape = tf.shape(images)
    weights = kernel[:, None, None, None, :]
    padded = tf.pad(images, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    across = sum(padded[:, :, tap:tap + shape[2], :] * weights[..., tap] for tap in range(taps))
    blurred = sum(across[:, tap:tap + shape[1]] * weights[..., tap] for tap in range(taps))
    return tf.clip_by_value(blurred, 0.0, 255.0)  # a convex blend, in range up to float rounding


def apply(images, draws: Draws, p: AugmentParams):
    """``images`` float32 [b, h, w, 3] blurred, each with its own sigma."""
    sigma = draws.applied(p.blur_prob) * draws.uniform(min(0.1, p.blur), p.blur)
    offsets = tf.range(-p.blur_radius, p.blur_radius + 1, dtype=tf.float32)
    # Sigma 0 (not applied) gives a delta kernel: the image unchanged.
    safe_sigma = tf.maximum(sigma, 1e-3)[:, None]
    kernel = tf.exp(-0.5 * tf.square(offsets[None, :] / safe_sigma))
    return _separable_blur(images, kernel / tf.reduce_sum(kernel, axis=1, keepdims=True))
