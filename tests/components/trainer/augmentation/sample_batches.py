"""Small image batches and settings the augmentation tests share."""

import dataclasses

import tensorflow as tf

from components.trainer.params import AugmentParams
from tests.helpers import CLASS_COLOURS, encode_image

MANY = 64  # images per batch: enough to tell a probability of 0.5 from 0 or 1


def colour_batch(size=24):
    """Four decoded images of solid colours (red, black, white, blue) and their one-hot labels."""
    colours = [(250, 5, 5), (0, 0, 0), (255, 255, 255), (10, 120, 240)]
    # JPEGs already at the size: the input pipeline's decoder gives these same pixels.
    images = tf.stack([tf.cast(tf.io.decode_jpeg(encode_image(c, size=(size, size)), channels=3), tf.float32)
                       for c in colours])
    return images, tf.one_hot([0, 1, 2, 0], len(CLASS_COLOURS))


def many_random_images(size=32):
    images = tf.random.stateless_uniform([MANY, size, size, 3], seed=[3, 1], minval=30.0, maxval=225.0)
    return tf.round(images), tf.eye(MANY)  # every image its own class: any mixing shows in the labels


def every_op_always(**overrides) -> AugmentParams:
    """Every op on every image, at full strength."""
    always = {f.name: 1.0 for f in dataclasses.fields(AugmentParams) if f.name.endswith(("_prob", "_flip"))}
    always.update(mixup_prob=0.5, cutmix_prob=0.5)
    return AugmentParams.from_preset("heavy", **{**always, **overrides})
