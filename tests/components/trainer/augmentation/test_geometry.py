"""Geometry: flips, zoom and the XLA affine warp."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import augmentation
from components.trainer.augmentation import geometry
from components.trainer.params import AugmentParams
from tests.components.trainer.augmentation.sample_batches import colour_batch, many_random_images


@pytest.mark.parametrize("flip, axis", [("horizontal_flip", 2), ("vertical_flip", 1)])
def test_flips_mirror_or_keep_each_image(flip, axis):
    images, labels = colour_batch()
    out, _ = augmentation.augment_batch(images, labels, tf.constant([5, 6], tf.int64), AugmentParams.from_preset(
        "none", **{flip: 0.5}))
    mirrored = np.flip(images.numpy(), axis=axis)
    results = [np.array_equal(o, i) or np.array_equal(o, m) for o, i, m in zip(out.numpy(), images.numpy(), mirrored)]
    assert all(results)


def test_zoom_scales_about_the_centre_without_shifting():
    images, labels = many_random_images(size=33)
    out, _ = augmentation.augment_batch(images, labels, tf.constant([6, 1], tf.int64),
                                        AugmentParams.from_preset("none", zoom_prob=1.0, zoom=0.3))
    assert not np.array_equal(out.numpy(), images.numpy())
    np.testing.assert_allclose(out.numpy()[:, 16, 16], images.numpy()[:, 16, 16], atol=1e-3)


@pytest.mark.parametrize("dtype", [tf.float32, tf.uint8])
@pytest.mark.parametrize("height, width", [(64, 64), (37, 53)])
def test_affine_warp_reproduces_tensorflows_projective_transform_op(height, width, dtype):
    """The XLA warp against ImageProjectiveTransformV3 (bilinear, REFLECT), with
    rotations, scales and shifts far enough to reflect more than once."""
    rng = np.random.default_rng(3)
    batch = 6
    images = tf.constant(rng.integers(0, 256, (batch, height, width, 3)), tf.float32)
    angle, scale = rng.uniform(-3.1, 3.1, batch), rng.uniform(0.3, 2.5, batch)
    shift = rng.uniform(-2.5, 2.5, (batch, 2)) * (width, height)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    transforms = np.stack([cos, -sin, shift[:, 0], sin, cos, shift[:, 1]], axis=1).astype(np.float32)
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=np.pad(transforms, [(0, 0), (0, 2)]), output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )
    # XLA may reorder the float arithmetic: agreement to a few hundredths of a level.
    warped = geometry.affine_warp(tf.cast(images, dtype), tf.constant(transforms))
    assert warped.dtype == tf.float32
    np.testing.assert_allclose(warped, expected, atol=0.1)
