"""Batch augmentation in pure TensorFlow, driven by an explicit seed.

Every random draw is a stateless op keyed by a per-batch seed, so a run is
reproducible whatever the parallelism of the input pipeline.  Rotation and
zoom share one projective warp (one resampling instead of two).  Images are
float32 in [0, 255] in and out; labels are never touched.
"""

import math

import tensorflow as tf

from components.trainer.params import AugmentParams


def _uniform(seed, batch, magnitude):
    return tf.random.stateless_uniform([batch], seed=seed, minval=-magnitude, maxval=magnitude)


def _rotation_zoom_transforms(angles, scales, height, width):
    """Projective transforms mapping output pixels to input pixels about the centre."""
    cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
    cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
    cos, sin = tf.cos(angles) / scales, tf.sin(angles) / scales
    zeros = tf.zeros_like(angles)
    return tf.stack(
        [cos, -sin, cx - cos * cx + sin * cy, sin, cos, cy - sin * cx - cos * cy, zeros, zeros],
        axis=1,
    )


def augment_batch(images: tf.Tensor, seed: tf.Tensor, params: AugmentParams) -> tf.Tensor:
    """Returns an augmented copy of ``images`` ``[batch, h, w, 3]``; ``seed`` is int ``[2]``."""
    batch = tf.shape(images)[0]
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    flip_seed, angle_seed, zoom_seed, bright_seed, contrast_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, num=5)
    )

    if params.horizontal_flip:
        flip = tf.random.stateless_uniform([batch], seed=flip_seed) < 0.5
        images = tf.where(flip[:, None, None, None], tf.reverse(images, axis=[2]), images)

    if params.rotation > 0 or params.zoom > 0:
        angles = _uniform(angle_seed, batch, params.rotation * 2.0 * math.pi)
        scales = 1.0 + _uniform(zoom_seed, batch, params.zoom)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images,
            transforms=_rotation_zoom_transforms(angles, scales, height, width),
            output_shape=tf.stack([height, width]),
            fill_value=0.0,
            interpolation="BILINEAR",
            fill_mode="REFLECT",
        )

    if params.brightness > 0:
        delta = _uniform(bright_seed, batch, params.brightness * 255.0)
        images = images + delta[:, None, None, None]

    if params.contrast > 0:
        factor = 1.0 + _uniform(contrast_seed, batch, params.contrast)
        mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
        images = (images - mean) * factor[:, None, None, None] + mean

    return tf.clip_by_value(images, 0.0, 255.0)
