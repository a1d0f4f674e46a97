"""Gaussian noise, with a standard deviation drawn for each image."""

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def active(p: AugmentParams) -> bool:
    return p.noise_prob > 0 and p.noise > 0


def apply(images, draws: Draws, p: AugmentParams):
    """``images`` float32 [b, h, w, 3] plus noise, clipped to [0, 255]."""
    sigma = draws.applied(p.noise_prob) * draws.uniform(0.0, p.noise) * 255.0
    return tf.clip_by_value(images + draws.normal(tf.shape(images)) * sigma[:, None, None, None], 0.0, 255.0)
