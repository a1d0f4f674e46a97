"""The entry point: ``augment_batch`` runs every family that is on over a batch,
in a fixed order, from one seed."""

from typing import Optional

import tensorflow as tf

from components.trainer.augmentation import blur, colour, erasing, geometry, mixing, noise
from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def uses_image_means(p: AugmentParams) -> bool:
    """Whether ``augment_batch`` reads ``image_means`` (the colour map does)."""
    return colour.active(p)


def is_active(p: AugmentParams) -> bool:
    """Whether any op can change an image."""
    return (geometry.active(p) or colour.active(p) or noise.active(p) or blur.active(p) or erasing.active(p)
            or p.mixes_labels)


@tf.function(jit_compile=True)
def _image_maps(seed, shape, means, p: AugmentParams):
    """The sampling points of each image's affine map (see ``geometry.affine_warp``)
    and the colour maps of a batch of ``shape`` [b, h, w, 3], or None for a group
    that is off (``means`` is None when colour is).

    One XLA program instead of about a hundred small ops run one by one for
    each batch, and one call less than computing the points on their own;
    traced once per configuration and image size, so building the input
    pipeline again in one process reuses it.
    """
    draws = Draws(seed, shape[0])
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    points = None
    if geometry.active(p):
        transforms = geometry.random_transforms(height, width, draws, p)
        points = geometry.sampling_points(transforms, shape[0], shape[1], shape[2])
    colour_maps = colour.random_maps(means, draws, p) if colour.active(p) else None
    return points, colour_maps


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
    points, colour_maps = _image_maps(maps_seed, shape, means, p)
    draws = Draws(seed, shape[0])
    if points is not None:
        images = geometry.bilinear_sample(images, *points)
    if colour_maps is not None:
        images = colour.recolor(images, *colour_maps)
    images = tf.cast(images, tf.float32)
    if noise.active(p):
        images = noise.apply(images, draws, p)
    if blur.active(p):
        images = blur.apply(images, draws, p)
    if erasing.active(p):
        images = erasing.apply(images, draws, p)
    if p.mixes_labels:
        images, labels = mixing.apply(images, labels, draws, p)
    # Every op above leaves its output in [0, 255]: no clipping pass here.
    images.set_shape(static_shape)  # the warp and the blur lose it
    return images, labels
