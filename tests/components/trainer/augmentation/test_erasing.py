"""Erasing: the erased rectangle's area."""

import tensorflow as tf

from components.trainer import augmentation
from components.trainer.params import AugmentParams
from tests.components.trainer.augmentation.sample_batches import many_random_images


def test_erasing_stays_within_its_largest_area():
    images, labels = many_random_images(size=64)
    params = AugmentParams.from_preset("none", erase_prob=1.0, erase_area=0.02)
    out, _ = augmentation.augment_batch(images, labels, tf.constant([2, 9], tf.int64), params)
    erased = (out.numpy() != images.numpy()).any(axis=3).mean(axis=(1, 2))
    # Whole pixels round the rectangle's sides up: allow a pixel's width on each side.
    assert erased.max() <= 0.02 + 2 * (0.02 ** 0.5 * 3 ** 0.5) / 64 and erased.min() > 0
