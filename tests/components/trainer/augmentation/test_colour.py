"""Colour: the fused colour map's brightness, contrast, grayscale and hue."""

import numpy as np
import tensorflow as tf

from components.trainer import augmentation
from components.trainer.params import AugmentParams


def _colour_only(**probabilities) -> AugmentParams:
    return AugmentParams.from_preset("none", **probabilities)


def _random_images():
    # Mid-range pixels: no op below pushes them past 0 or 255, so nothing is clipped.
    return tf.random.stateless_uniform([4, 8, 8, 3], seed=[1, 2], minval=70.0, maxval=180.0), tf.one_hot([0] * 4, 2)


def _apply(params):
    images, labels = _random_images()
    out, _ = augmentation.augment_batch(images, labels, tf.constant([9, 9], tf.int64), params)
    return images.numpy(), out.numpy()


def test_fused_colour_map_brightness_is_a_shift_per_image():
    images, out = _apply(_colour_only(brightness_prob=1.0, brightness=0.05))
    shift = out - images
    for per_image in shift:
        np.testing.assert_allclose(per_image, per_image.flat[0], atol=1e-3)
    assert np.abs(shift).max() > 0


def test_fused_colour_map_contrast_scales_about_the_mean():
    images, out = _apply(_colour_only(contrast_prob=1.0, contrast=0.3))
    for before, after in zip(images, out):
        mean = before.mean()
        factor = (after - mean).ravel() / (before - mean).ravel()
        np.testing.assert_allclose(factor, factor[0], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(after.mean(), mean, atol=1e-2)


def test_fused_colour_map_grayscale_gives_the_luma_in_every_channel():
    images, out = _apply(_colour_only(grayscale_prob=1.0))
    luma = images @ np.array([0.299, 0.587, 0.114], np.float32)
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], luma, atol=1e-3)


def test_fused_colour_map_hue_keeps_the_luma():
    images, out = _apply(_colour_only(hue_prob=1.0, hue=0.2))
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    assert not np.allclose(out, images, atol=1.0)
    # Y is kept exactly, but for the odd pixel a rotated channel clips at 0 or 255.
    assert np.mean(np.abs(out @ weights - images @ weights) < 0.01) > 0.97
