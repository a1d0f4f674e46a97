"""Blur: the separable Gaussian against a NumPy reference."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer.augmentation import blur
from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def _reference_blur(image, sigma, radius):
    """A Gaussian blur of one image [h, w, c] in NumPy: mirrored borders, x then y."""
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / max(sigma, 1e-3)) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    height, width = image.shape[:2]
    across = sum(padded[:, tap:tap + width] * k for tap, k in enumerate(kernel))
    return sum(across[tap:tap + height] * k for tap, k in enumerate(kernel))


@pytest.mark.parametrize("largest_sigma", [1.5, 2.5, 5.0])
def test_blur_matches_a_reference_gaussian_at_any_sigma_over_a_full_batch(largest_sigma):
    # 32 images of 3 channels: kernels of 13 taps or more over 96 channels broke the depthwise convolution.
    images = tf.random.stateless_uniform([32, 40, 40, 3], seed=[8, 2], maxval=255.0)
    params = AugmentParams.from_preset("none", blur_prob=1.0, blur=largest_sigma)
    out = blur.apply(images, Draws(tf.constant([4, 2], tf.int64), 32), params).numpy()
    draws = Draws(tf.constant([4, 2], tf.int64), 32)  # the same draws again: each image's sigma
    sigmas = (draws.applied(1.0) * draws.uniform(min(0.1, largest_sigma), largest_sigma)).numpy()
    assert sigmas.max() > 0.6 * largest_sigma  # the widest kernels were drawn
    for image, result, sigma in zip(images.numpy(), out, sigmas):
        np.testing.assert_allclose(result, np.clip(_reference_blur(image, sigma, params.blur_radius), 0, 255),
                                   atol=2e-3)
