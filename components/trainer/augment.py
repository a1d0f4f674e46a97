"""Batch augmentation in pure TensorFlow, vectorised over the batch, driven by one seed.

Every random draw is a stateless op keyed by a per-batch seed, so a run is
reproducible whatever the parallelism of the input pipeline. Each op is applied
to each image with its own probability and a random magnitude up to its limit.

* Geometry (flips, rotation, zoom, translation, random resized crop) is composed
  into one affine transform per image: one resampling, not five, by a bilinear
  warp with reflected borders compiled by XLA (faster on a CPU than TensorFlow's
  ImageProjectiveTransformV3 op, whose results it reproduces: bench/bench_input.py
  measures both).
* Colour: brightness, contrast, saturation and random grayscale (one gray blend),
  hue (a rotation in YIQ space), composed into one 3x3 matrix and offset per
  image: one pass over the pixels.
* Gaussian noise; Gaussian blur (separable, a kernel per image, compiled by
  XLA); random erasing (a noise-filled rectangle per image).
* Mixup and cutmix (one or neither per image) pair each image with the one
  before it in the batch (the first with the last) and mix their one-hot labels
  in the same proportion as the pixels (soft labels). A batch of one image has
  no partner for it, so it is not mixed.

Images come in as uint8 or float32 in [0, 255] and leave as float32; labels are
one-hot float32.
"""

import math
from typing import Optional

import tensorflow as tf

from components.trainer.params import AugmentParams

# RGB <-> YIQ, the colour space where a hue change is a rotation of (I, Q).
_RGB_TO_YIQ = tf.constant([[0.299, 0.596, 0.211], [0.587, -0.274, -0.523], [0.114, -0.322, 0.312]])
_YIQ_TO_RGB = tf.linalg.inv(_RGB_TO_YIQ)
_LUMA = tf.constant([0.299, 0.587, 0.114])


# Per-image scalar draws of one batch come from one block of uniforms, row by row:
# one random op instead of about four per draw, which keeps the traced graph
# (and the per-batch op count) small. No configuration needs more rows than this.
_SCALAR_DRAWS = 64


class _Draws:
    """Stateless random draws keyed by the batch seed: per-image scalars are rows
    of one uniform block; image-sized draws each get their own sub-seed."""

    def __init__(self, seed: tf.Tensor, batch: tf.Tensor):
        self._seed = seed
        self._count = 0
        self._rows = None  # an iterator over the block's rows, drawn at the first need
        self.batch = batch

    def _next(self):
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._count)

    def _row(self):
        if self._rows is None:
            block = tf.random.stateless_uniform([_SCALAR_DRAWS, self.batch], seed=self._next())
            self._rows = iter(tf.unstack(block, num=_SCALAR_DRAWS))
        try:
            return next(self._rows)
        except StopIteration:
            raise RuntimeError(f"More than {_SCALAR_DRAWS} per-image draws; raise _SCALAR_DRAWS.") from None

    def uniform(self, low=0.0, high=1.0, shape=None):
        if shape is not None:
            return tf.random.stateless_uniform(shape, seed=self._next(), minval=low, maxval=high)
        return low + (high - low) * self._row()

    def symmetric(self, magnitude):
        return self.uniform(-magnitude, magnitude)

    def applied(self, probability: float) -> tf.Tensor:
        """1.0 for the images an op applies to, else 0.0."""
        return tf.cast(self._row() < probability, tf.float32)

    def beta(self, alpha: float):
        seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(self._next(), num=2))
        a = tf.random.stateless_gamma([self.batch], seed=seed_a, alpha=alpha)
        b = tf.random.stateless_gamma([self.batch], seed=seed_b, alpha=alpha)
        return a / (a + b)

    def normal(self, shape):
        return tf.random.stateless_normal(shape, seed=self._next())


def _geometry(height, width, draws: _Draws, p: AugmentParams) -> tf.Tensor:
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


@tf.function(jit_compile=True)
def _recolor(images, matrix, bias):
    """``images @ matrix[b] + bias[b]`` per pixel, float32, clipped to [0, 255]."""
    images = tf.cast(images, tf.float32)
    out = bias[:, None, None, :]
    for channel in range(3):
        out = out + images[..., channel:channel + 1] * matrix[:, None, None, channel, :]
    return tf.clip_by_value(out, 0.0, 255.0)


# The sampling points (computed inside ``_image_maps`` for augmentation), the
# resampling and the colour map are separate XLA programs: fused into one loop per
# output value, XLA would redo the coordinate maths for every channel, and the
# whole warp for each channel the colour map reads.
@tf.function(jit_compile=True)
def _sampling_points(transforms, batch, height, width):
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
def _bilinear_sample(images, top_left, weights):
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
    top_left, weights = _sampling_points(transforms, shape[0], shape[1], shape[2])
    return _bilinear_sample(images, top_left, weights)


def _color(means, draws: _Draws, p: AugmentParams) -> tuple[tf.Tensor, tf.Tensor]:
    """Brightness, contrast, saturation, grayscale and hue as one affine colour map
    per image: ``(matrix [b, 3, 3], bias [b, 3])``.

    All five are linear in the pixel values, so they compose into a 3x3 matrix
    and an offset per image: one pass over the pixels instead of five. Contrast
    scales about ``means`` [b], each image's mean before augmentation.
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


def _noise(images, draws: _Draws, p: AugmentParams):
    sigma = draws.applied(p.noise_prob) * draws.uniform(0.0, p.noise) * 255.0
    return tf.clip_by_value(images + draws.normal(tf.shape(images)) * sigma[:, None, None, None], 0.0, 255.0)


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


def _blur(images, draws: _Draws, p: AugmentParams):
    """Separable Gaussian blur with a sigma per image."""
    sigma = draws.applied(p.blur_prob) * draws.uniform(min(0.1, p.blur), p.blur)
    offsets = tf.range(-p.blur_radius, p.blur_radius + 1, dtype=tf.float32)
    # Sigma 0 (not applied) gives a delta kernel: the image unchanged.
    safe_sigma = tf.maximum(sigma, 1e-3)[:, None]
    kernel = tf.exp(-0.5 * tf.square(offsets[None, :] / safe_sigma))
    return _separable_blur(images, kernel / tf.reduce_sum(kernel, axis=1, keepdims=True))


def _boxes(draws: _Draws, height, width, area):
    """A random rectangle mask [batch, h, w, 1] per image, of the given area fraction."""
    log_ratio = draws.symmetric(math.log(3.0))
    box_h = tf.sqrt(area * tf.exp(log_ratio)) * height
    box_w = tf.sqrt(area / tf.exp(log_ratio)) * width
    centre_y = draws.uniform() * height
    centre_x = draws.uniform() * width
    rows = tf.range(height)[None, :, None]
    cols = tf.range(width)[None, None, :]
    inside = ((tf.abs(rows - centre_y[:, None, None]) < box_h[:, None, None] / 2)
              & (tf.abs(cols - centre_x[:, None, None]) < box_w[:, None, None] / 2))
    return tf.cast(inside, tf.float32)[..., None]


def _erase(images, draws: _Draws, p: AugmentParams):
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    area = draws.applied(p.erase_prob) * draws.uniform(min(0.02, p.erase_area), p.erase_area)
    mask = _boxes(draws, height, width, area)
    fill = draws.uniform(0.0, 255.0, shape=shape)
    return images * (1.0 - mask) + fill * mask


def _mix(images, labels, draws: _Draws, p: AugmentParams) -> tuple[tf.Tensor, tf.Tensor]:
    """Mixup or cutmix with the partner image, the one before in the batch (the
    first image's is the last); labels mixed alike."""
    # A roll pairs no image of a batch of two or more with itself, as reversing would the middle of an odd one.
    partner_images, partner_labels = tf.roll(images, 1, axis=0), tf.roll(labels, 1, axis=0)
    # One draw picks mixup, cutmix or neither, each with its own probability.
    which = draws.uniform()
    use_mixup = tf.cast(which < p.mixup_prob, tf.float32)
    use_cutmix = tf.cast((which >= p.mixup_prob) & (which < p.mixup_prob + p.cutmix_prob), tf.float32)
    # Mixup: a convex blend with weight lam for the image itself.
    lam_mixup = draws.beta(p.mixup_alpha)
    # Cutmix: a partner rectangle covering 1 - lam of the image.
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    mask = _boxes(draws, height, width, use_cutmix * (1.0 - draws.beta(p.cutmix_alpha)))
    lam_cutmix = 1.0 - tf.reduce_mean(mask, axis=[1, 2, 3])  # the area actually pasted
    lam = use_mixup * lam_mixup + use_cutmix * lam_cutmix + (1.0 - use_mixup - use_cutmix)
    blend = use_mixup[:, None, None, None]
    images = (1.0 - mask) * images + mask * partner_images
    images = (1.0 - blend) * images + blend * (lam[:, None, None, None] * images
                                               + (1.0 - lam[:, None, None, None]) * partner_images)
    labels = lam[:, None] * labels + (1.0 - lam[:, None]) * partner_labels
    return tf.clip_by_value(images, 0.0, 255.0), labels  # convex blends, in range up to float rounding


def _geometric_active(p: AugmentParams) -> bool:
    return p.geometric and any(prob > 0 for prob in (p.horizontal_flip, p.vertical_flip, p.rotation_prob,
                                                      p.zoom_prob, p.translate_prob, p.crop_prob))


def _color_active(p: AugmentParams) -> bool:
    return p.color and any(prob > 0 for prob in (p.brightness_prob, p.contrast_prob, p.saturation_prob,
                                                  p.hue_prob, p.grayscale_prob))


def _noise_active(p: AugmentParams) -> bool:
    return p.noise_prob > 0 and p.noise > 0


def _blur_active(p: AugmentParams) -> bool:
    return p.blur_prob > 0 and p.blur > 0


def _erase_active(p: AugmentParams) -> bool:
    return p.erase_prob > 0 and p.erase_area > 0


def uses_image_means(p: AugmentParams) -> bool:
    """Whether ``augment_batch`` reads ``image_means`` (the colour map does)."""
    return _color_active(p)


def is_active(p: AugmentParams) -> bool:
    """Whether any op can change an image."""
    return (_geometric_active(p) or _color_active(p) or _noise_active(p) or _blur_active(p) or _erase_active(p)
            or p.mixes_labels)


@tf.function(jit_compile=True)
def _image_maps(seed, shape, means, p: AugmentParams):
    """The sampling points of each image's affine map (see ``affine_warp``) and
    the colour maps of a batch of ``shape`` [b, h, w, 3], or None for a group
    that is off (``means`` is None when colour is).

    One XLA program instead of about a hundred small ops run one by one for
    each batch, and one call less than computing the points on their own;
    traced once per configuration and image size, so building the input
    pipeline again in one process reuses it.
    """
    draws = _Draws(seed, shape[0])
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    points = None
    if _geometric_active(p):
        points = _sampling_points(_geometry(height, width, draws, p), shape[0], shape[1], shape[2])
    colour = _color(means, draws, p) if _color_active(p) else None
    return points, colour


def image_means(images: tf.Tensor) -> tf.Tensor:
    """The mean pixel value of each image (``[..., h, w, 3]`` -> ``[...]``), about
    which contrast changes scale."""
    # TensorFlow's own reduction, not XLA's: several times faster over uint8 on a CPU.
    return tf.reduce_mean(tf.cast(images, tf.float32), axis=[-3, -2, -1])


def augment_batch(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor, p: AugmentParams,
                  means: Optional[tf.Tensor] = None):
    """Returns augmented ``(images [b, h, w, 3] float32 in [0, 255], labels [b, classes])``
    from ``images`` uint8 or float32 in [0, 255].

    ``seed`` is an int ``[2]`` tensor; the same seed gives the same result.
    ``means`` are the images' ``image_means``, if the caller has them (the input
    pipeline computes them once, before its cache); else they are computed here.
    """
    static_shape = images.shape
    shape = tf.shape(images)
    maps_seed, seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if not uses_image_means(p):
        means = None
    elif means is None:
        means = image_means(images)
    points, colour = _image_maps(maps_seed, shape, means, p)
    draws = _Draws(seed, shape[0])
    if points is not None:
        images = _bilinear_sample(images, *points)
    if colour is not None:
        images = _recolor(images, *colour)
    images = tf.cast(images, tf.float32)
    if _noise_active(p):
        images = _noise(images, draws, p)
    if _blur_active(p):
        images = _blur(images, draws, p)
    if _erase_active(p):
        images = _erase(images, draws, p)
    if p.mixes_labels:
        images, labels = _mix(images, labels, draws, p)
    # Every op above leaves its output in [0, 255]: no clipping pass here.
    images.set_shape(static_shape)  # the warp and the blur lose it
    return images, labels
