"""Mixing: mixup and cutmix, their partners, probabilities and soft labels."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import augmentation
from components.trainer.params import AugmentParams
from tests.components.trainer.augmentation.sample_batches import MANY, colour_batch, every_op_always


def test_mixup_and_cutmix_give_soft_labels_from_the_partner_image():
    images, labels = colour_batch()
    _out, soft = augmentation.augment_batch(images, labels, tf.constant([3, 4], tf.int64), every_op_always())
    soft = soft.numpy()
    partners = np.roll(labels.numpy(), 1, axis=0)  # the image before (the first image's is the last)
    assert (soft.max(axis=1) < 1.0).any()  # some labels are mixed
    for row, label, partner in zip(soft, labels.numpy(), partners):
        # A convex combination of the image's own label and its partner's.
        lam = row @ label if not np.array_equal(label, partner) else 1.0
        np.testing.assert_allclose(row, lam * label + (1 - lam) * partner, atol=1e-5)


def test_mixup_and_cutmix_keep_their_probabilities_and_labels_match_the_pixels():
    # Flat images, each its own grey: a pixel's value tells how much of it is the image itself.
    greys = np.arange(MANY, dtype=np.float32) * 3.0 + 20.0
    images = tf.constant(np.broadcast_to(greys[:, None, None, None], (MANY, 16, 16, 3)))
    params = AugmentParams.from_preset("none", mixup_prob=0.5, mixup_alpha=1.0, cutmix_prob=0.5, cutmix_alpha=1.0)
    out, labels = augmentation.augment_batch(images, tf.eye(MANY), tf.constant([4, 4], tf.int64), params)
    partner = np.roll(greys, 1)
    own_share = (out.numpy()[..., 0] - partner[:, None, None]) / (greys - partner)[:, None, None]
    own_label = np.diag(labels.numpy())
    np.testing.assert_allclose(own_share.mean(axis=(1, 2)), own_label, atol=1e-3)
    blended = ((own_share > 0.01) & (own_share < 0.99)).any(axis=(1, 2))  # mixup: every pixel in between
    pasted = (np.isclose(own_share, 0.0, atol=1e-4) | np.isclose(own_share, 1.0, atol=1e-4)).all(axis=(1, 2)) & (
        own_label < 1.0)  # cutmix: pixels of one image or the other
    assert 0.3 <= blended.mean() <= 0.7 and 0.3 <= pasted.mean() <= 0.7


@pytest.mark.parametrize("batch", [2, 3, 5])
def test_mixing_pairs_every_image_of_a_batch_with_another(batch):
    # Odd batches too: no image is its own partner. Flat images, each its own grey, all mixed up.
    greys = np.arange(batch, dtype=np.float32) * 40.0 + 20.0
    images = tf.constant(np.broadcast_to(greys[:, None, None, None], (batch, 8, 8, 3)))
    params = AugmentParams.from_preset("none", mixup_prob=1.0, mixup_alpha=1.0)
    out, labels = augmentation.augment_batch(images, tf.eye(batch), tf.constant([1, 3], tf.int64), params)
    assert (np.diag(labels.numpy()) < 1.0 - 1e-6).all()
    assert (np.abs(out.numpy() - images.numpy()).max(axis=(1, 2, 3)) > 1e-3).all()
    # A batch of one has no other image to mix with: it passes unchanged.
    alone, alone_label = augmentation.augment_batch(images[:1], tf.eye(1), tf.constant([1, 3], tf.int64), params)
    np.testing.assert_array_equal(alone.numpy(), images.numpy()[:1])
    np.testing.assert_array_equal(alone_label.numpy(), [[1.0]])
