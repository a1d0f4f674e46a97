"""Random erasing (cutout): a rectangle of each image filled with uniform noise."""

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def active(p: AugmentParams) -> bool:
    return p.erase_prob > 0 and p.erase_area > 0


def apply(images, draws: Draws, p: AugmentParams):
    """``images`` float32 [b, h, w, 3], each with a rectangle of random area up to
    ``p.erase_area`` replaced by noise."""
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    area = draws.applied(p.erase_prob) * draws.uniform(min(0.02, p.erase_area), p.erase_area)
    mask = draws.boxes(height, width, area)
    fill = draws.uniform(0.0, 255.0, shape=shape)
    return images * (1.0 - mask) + fill * mask
