"""Colour ops: brightness, contrast, saturation, random grayscale and hue.

All five are linear in the pixel values, so they compose into one 3x3 matrix and
offset per image, applied in one pass over the pixels instead of five.
"""

import math

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams

# RGB <-> YIQ, the colour space where a hue change is a rotation of (I, Q).
_RGB_TO_YIQ = tf.constant([[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]])
_YIQ_TO_RGB = tf.linalg.inv(_RGB_TO_YIQ)
_LUMA = tf.constant([0.299, 0.587, 0.114])


def active(p: AugmentParams) -> bool:
    return p.color and any(prob > 0 for prob in (p.brightness_prob, p.contrast_prob, p.saturation_prob,
                                                  p.hue_prob, p.grayscale_prob))


def random_maps(means, draws: Draws, p: AugmentParams) -> tuple[tf.Tensor, tf.Tensor]:
    """Brightness, contrast, saturation, grayscale and hue as one affine colour map
    per image: ``(matrix [b, 3, 3], bias [b, 3])``, for ``recolor``.

    Contrast scales about ``means`` [b], each image's mean before augmentation.
    """
    ones = tf.ones([draws.batch])
    delta = draws.applied(p.brightness_prob) * draws.symmetric(p.brightness) * 255.0
    contrast = 1.0 + draws.applied(p.contrast_prob) * draws.symmetric(p.contrast)
    # Saturation blends towards the gray image; grayscale is saturation 0.
    saturation = (1.0 + draws.applied(p.saturation_prob) * draws.symmetric(p.saturation)) * (
        1.0 - draws.applied(p.grayscale_prob))
    luma_columns = tf.tile(_LUMA[:, None], [1, 3])  # x @ this = the gray value in each channel
    saturate = (saturation[:, None, None] * tf.eye(3)[None]
                + (1.0 - saturation)[:, None, None] * luma_columns[None])
    matrix = saturate
    if p.hue_prob > 0 and p.hue > 0:
        angle = draws.applied(p.hue_prob) * draws.symmetric(p.hue * 2.0 * math.pi)
        cos, sin, zeros = tf.cos(angle), tf.sin(angle), tf.zeros_like(angle)
        rotation = tf.reshape(tf.stack([ones, zeros, zeros, zeros, cos, -sin, zeros, sin, cos], axis=1), [-1, 3, 3])
        hue = tf.matmul(tf.matmul(_RGB_TO_YIQ[None], rotation, transpose_b=True), _YIQ_TO_RGB[None])
        matrix = tf.matmul(matrix, hue)
    # brightness then contrast about the (brightened) mean: c * x + ((delta - m) c + m), m = mean(x) + delta.
    mean = means + delta
    offset = (delta - mean) * contrast + mean
    # The offset is gray (equal in every channel) before the colour matrix: carry it through.
    bias = tf.matmul(offset[:, None, None] * tf.ones([1, 1, 3]), matrix)[:, 0]  # [batch, 3]
    return contrast[:, None, None] * matrix, bias


@tf.function(jit_compile=True)
def recolor(images, matrix, bias):
    """``images @ matrix[b] + bias[b]`` per pixel, float32, clipped to [0, 255]."""
    images = tf.cast(images, tf.float32)
    out = bias[:, None, None, :]
    for channel in range(3):
        out = out + images[..., channel:channel + 1] * matrix[:, None, None, channel, :]
    return tf.clip_by_value(out, 0.0, 255.0)
