"""Geometric ops: flips, rotation, zoom, translation and random resized crop.

They compose into one affine map per image, so each image is resampled once,
not five times, by a bilinear warp with reflected borders compiled by XLA
(faster on a CPU than TensorFlow's ImageProjectiveTransformV3 op, whose results
it reproduces: bench/bench_input.py measures both).
"""

import math

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def active(p: AugmentParams) -> bool:
    return p.geometric and any(prob > 0 for prob in (p.horizontal_flip, p.vertical_flip, p.rotation_prob,
                                                      p.zoom_prob, p.translate_prob, p.crop_prob))


def random_transforms(height, width, draws: Draws, p: AugmentParams) -> tf.Tensor:
    """One affine map per image ([batch, 6], see ``affine_warp``) for flips,
    rotation, zoom, translation and crop of images ``height`` x ``width`` (float)."""
    # Output-to-input mapping about the centre: input = c + A (output - c) + shift.
    flip_x = 1.0 - 2.0 * draws.applied(p.horizontal_flip)
    flip_y = 1.0 - 2.0 * draws.applied(p.vertical_flip)
    angle = draws.applied(p.rotation_prob) * draws.symmetric(p.rotation * 2.0 * math.pi)
    zoom = 1.0 + draws.applied(p.zoom_prob) * draws.symmetric(p.zoom)
    # Random resized crop: a window of a random area and aspect, stretched to full size.
    crop = draws.applied(p.crop_prob)
    area = 1.0 - crop * (1.0 - draws.uniform(p.crop_min_area, 1.0))
    log_aspect = crop * draws.symmetric(math.log(p.crop_aspect))
    crop_x = tf.minimum(tf.sqrt(area * tf.exp(log_aspect)), 1.0)
    crop_y = tf.minimum(tf.sqrt(area / tf.exp(log_aspect)), 1.0)
    # Zoom scales about the centre of the crop window, which lies anywhere inside
    # the image; only translation shifts it further.
    scale_x, scale_y = crop_x / zoom, crop_y / zoom
    move = draws.applied(p.translate_prob)
    shift_x = (draws.symmetric(1.0) * (1.0 - crop_x) / 2.0 + move * draws.symmetric(p.translate)) * width
    shift_y = (draws.symmetric(1.0) * (1.0 - crop_y) / 2.0 + move * draws.symmetric(p.translate)) * height
    cos, sin = tf.cos(angle), tf.sin(angle)
    a00, a01 = flip_x * cos * scale_x, -flip_x * sin * scale_y
    a10, a11 = flip_y * sin * scale_x, flip_y * cos * scale_y
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    return tf.stack(
        [a00, a01, cx - a00 * cx - a01 * cy + shift_x,
         a10, a11, cy - a10 * cx - a11 * cy + shift_y],
        axis=1,
    )


def _reflect(coord, size):
    """Maps a coordinate into [0, size - 1] as ImageProjectiveTransformV3's REFLECT
    fill mode does (d c b a | a b c d | d c b a): periodic with period 2 * size,
    mirrored in the second half of each period."""
    period = 2.0 * size
    phase = coord - period * tf.floor(coord * (1.0 / period))  # in [0, period)
    mirrored = tf.where(phase >= size, period - 1.0 - phase, phase)
    return tf.clip_by_value(mirrored, 0.0, size - 1.0)


# The sampling points (computed inside the entry point's maps program for
# augmentation), the resampling and the colour map are separate XLA programs: fused
# into one loop per output value, XLA would redo the coordinate maths for every
# channel, and the whole warp for each channel the colour map reads.
@tf.function(jit_compile=True)
def sampling_points(transforms, batch, height, width):
    """For each output pixel, the flat index of its top-left source pixel and its
    bilinear weights (x, y), with reflected borders."""
    height_f, width_f = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    out_y, out_x = tf.range(height_f)[None, :, None], tf.range(width_f)[None, None, :]
    a = [transforms[:, i, None, None] for i in range(6)]
    x = _reflect(a[0] * out_x + a[1] * out_y + a[2], width_f)
    y = _reflect(a[3] * out_x + a[4] * out_y + a[5], height_f)
    x0, y0 = tf.floor(x), tf.floor(y)
    top_left = (tf.range(batch) * height * width)[:, None, None] + tf.cast(y0, tf.int32) * width + tf.cast(x0, tf.int32)
    return top_left, tf.stack([x - x0, y - y0], axis=-1)


@tf.function(jit_compile=True)
def bilinear_sample(images, top_left, weights):
    """``images`` resampled at the ``sampling_points``: float32 [b, h, w, 3] in [0, 255]."""
    shape = tf.shape(images)
    width, count = shape[2], shape[0] * shape[1] * shape[2]
    # Row i of the table holds pixel i and its right-hand neighbour, so one gather
    # fetches both pixels a row of the bilinear 2x2 needs: two gathers, not four.
    # Padding keeps the last pixel's neighbours in range; they get weight 0
    # (reflected coordinates never pass the last row or column).
    pixels = tf.reshape(images, [-1, 3])
    pixels = tf.concat([pixels, tf.zeros([width + 1, 3], images.dtype)], axis=0)
    pairs = tf.concat([pixels[:count + width], pixels[1:count + width + 1]], axis=1)  # [count + width, 6]
    # Two gathers of [b, h, w, 6], not one of [b, h, w, 2, 6] from stacked indices:
    # XLA runs that one about a fifth slower on a CPU.
    weight_x, weight_y = weights[..., 0:1], weights[..., 1:2]

    def blended_row(first_pixels):
        """The pair starting at each of ``first_pixels``, blended along x: [b, h, w, 3]."""
        pair = tf.cast(tf.gather(pairs, first_pixels), tf.float32)
        return pair[..., :3] * (1.0 - weight_x) + pair[..., 3:] * weight_x

    top, bottom = blended_row(top_left), blended_row(top_left + width)
    # Blends of values in [0, 255] stay there up to float rounding; clipping here is fused, not another pass.
    return tf.clip_by_value(top * (1.0 - weight_y) + bottom * weight_y, 0.0, 255.0)


def affine_warp(images, transforms):
    """Bilinear resampling of ``images`` [b, h, w, 3] (uint8 or float32) by one
    affine map per image, with reflected borders; float32 out.

    ``transforms`` [b, 6], ``a0 a1 a2 b0 b1 b2``, maps output pixel (x, y) to input
    pixel (a0 x + a1 y + a2, b0 x + b1 y + b2): the affine part of
    ImageProjectiveTransformV3's transforms. Gathering from uint8 moves a
    quarter of the bytes float32 would. (``augment_batch`` runs the same two
    steps, with the points computed in its maps program.)
    """
    shape = tf.shape(images)
    top_left, weights = sampling_points(transforms, shape[0], shape[1], shape[2])
    return bilinear_sample(images, top_left, weights)
