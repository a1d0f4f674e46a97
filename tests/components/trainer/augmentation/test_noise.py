"""Noise: zero-mean Gaussian noise with each image's drawn standard deviation."""

import numpy as np
import tensorflow as tf

from components.trainer.augmentation import noise
from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def test_noise_is_zero_mean_gaussian_with_each_images_drawn_sigma():
    # Mid-grey images: noise this weak never reaches 0 or 255, so nothing is clipped.
    images = tf.fill([16, 48, 48, 3], 127.5)
    params = AugmentParams.from_preset("none", noise_prob=0.5, noise=0.03)
    assert noise.active(params) and not noise.active(AugmentParams.from_preset("none"))
    out = noise.apply(images, Draws(tf.constant([3, 7], tf.int64), 16), params).numpy()
    draws = Draws(tf.constant([3, 7], tf.int64), 16)  # the same draws again: each image's sigma
    sigmas = (draws.applied(params.noise_prob) * draws.uniform(0.0, params.noise) * 255.0).numpy()
    assert (sigmas == 0).any() and (sigmas > 1.0).any()  # some images spared, some noisy
    for residual, sigma in zip(out - 127.5, sigmas):
        if sigma == 0:
            np.testing.assert_array_equal(residual, 0.0)
        else:  # 6,912 samples: their deviation is within 3% of sigma, their mean within 6% of it
            np.testing.assert_allclose(residual.std(), sigma, rtol=0.03)
            assert abs(residual.mean()) < 0.06 * sigma
