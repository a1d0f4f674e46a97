"""Mixup and cutmix: each image mixed with its partner, the one before it in the
batch (the first image's is the last), and their one-hot labels mixed in the same
proportion as the pixels (soft labels).

An image gets mixup, cutmix or neither. A batch of one image has no partner for
it, so it is not mixed.
"""

import tensorflow as tf

from components.trainer.augmentation.draws import Draws
from components.trainer.params import AugmentParams


def apply(images, labels, draws: Draws, p: AugmentParams) -> tuple[tf.Tensor, tf.Tensor]:
    """``(images float32 [b, h, w, 3], labels [b, classes])`` after mixup or cutmix
    with each image's partner."""
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
    mask = draws.boxes(height, width, use_cutmix * (1.0 - draws.beta(p.cutmix_alpha)))
    lam_cutmix = 1.0 - tf.reduce_mean(mask, axis=[1, 2, 3])  # the area actually pasted
    lam = use_mixup * lam_mixup + use_cutmix * lam_cutmix + (1.0 - use_mixup - use_cutmix)
    blend = use_mixup[:, None, None, None]
    images = (1.0 - mask) * images + mask * partner_images
    images = (1.0 - blend) * images + blend * (lam[:, None, None, None] * images
                                               + (1.0 - lam[:, None, None, None]) * partner_images)
    labels = lam[:, None] * labels + (1.0 - lam[:, None]) * partner_labels
    return tf.clip_by_value(images, 0.0, 255.0), labels  # convex blends, in range up to float rounding
