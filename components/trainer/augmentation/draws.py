"""Stateless random draws for one batch, keyed by the batch's seed.

Every op takes its randomness from a ``Draws``, so one seed gives the same
augmentation whatever the parallelism of the input pipeline; the ops must draw
in a fixed order for that to hold.
"""

import math

import tensorflow as tf

# Per-image scalar draws of one batch come from one block of uniforms, row by row:
# one random op instead of about four per draw, which keeps the traced graph
# (and the per-batch op count) small. No configuration needs more rows than this.
_SCALAR_DRAWS = 64


class Draws:
    """Stateless random draws keyed by the batch seed: per-image scalars are rows
    of one uniform block; image-sized draws each get their own sub-seed."""

    def __init__(self, seed: tf.Tensor, batch: tf.Tensor):
        self._seed = seed
        self._count = 0
        self._rows = None  # an iterator over the block's rows, drawn at the first need
        self.batch = batch

    def _next(self):
        self._count += 1
        return tf.random.experimental.stateless_fold_in(self._seed, self._count)

    def _row(self):
        if self._rows is None:
            block = tf.random.stateless_uniform([_SCALAR_DRAWS, self.batch], seed=self._next())
            self._rows = iter(tf.unstack(block, num=_SCALAR_DRAWS))
        try:
            return next(self._rows)
        except StopIteration:
            raise RuntimeError(f"More than {_SCALAR_DRAWS} per-image draws; raise _SCALAR_DRAWS.") from None

    def uniform(self, low=0.0, high=1.0, shape=None):
        if shape is not None:
            return tf.random.stateless_uniform(shape, seed=self._next(), minval=low, maxval=high)
        return low + (high - low) * self._row()

    def symmetric(self, magnitude):
        return self.uniform(-magnitude, magnitude)

    def applied(self, probability: float) -> tf.Tensor:
        """1.0 for the images an op applies to, else 0.0."""
        return tf.cast(self._row() < probability, tf.float32)

    def beta(self, alpha: float):
        seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(self._next(), num=2))
        a = tf.random.stateless_gamma([self.batch], seed=seed_a, alpha=alpha)
        b = tf.random.stateless_gamma([self.batch], seed=seed_b, alpha=alpha)
        return a / (a + b)

    def normal(self, shape):
        return tf.random.stateless_normal(shape, seed=self._next())

    def boxes(self, height, width, area):
        """A random rectangle mask [batch, h, w, 1] per image, of the given area fraction
        (erasing and cutmix both cut one)."""
        log_ratio = self.symmetric(math.log(3.0))
        box_h = tf.sqrt(area * tf.exp(log_ratio)) * height
        box_w = tf.sqrt(area / tf.exp(log_ratio)) * width
        centre_y = self.uniform() * height
        centre_x = self.uniform() * width
        rows = tf.range(height)[None, :, None]
        cols = tf.range(width)[None, None, :]
        inside = ((tf.abs(rows - centre_y[:, None, None]) < box_h[:, None, None] / 2)
                  & (tf.abs(cols - centre_x[:, None, None]) < box_w[:, None, None] / 2))
        return tf.cast(inside, tf.float32)[..., None]
