"""Draws: reproducible from the seed, in range, and random rectangles of the asked area."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer.augmentation import draws as draws_module
from components.trainer.augmentation.draws import Draws


def _every_kind(seed):
    draws = Draws(tf.constant(seed, tf.int64), 8)
    return [draws.uniform(), draws.symmetric(2.0), draws.applied(0.5), draws.beta(1.0), draws.normal([8, 3]),
            draws.uniform(0.0, 255.0, shape=[8, 4]), draws.boxes(12.0, 12.0, tf.fill([8], 0.2))]


def test_the_same_seed_gives_the_same_draws_and_another_seed_others():
    first, again, other = _every_kind([1, 2]), _every_kind([1, 2]), _every_kind([1, 3])
    for drawn, repeated, differently in zip(first, again, other):
        np.testing.assert_array_equal(drawn, repeated)
        assert not np.array_equal(drawn, differently)


def test_scalar_draws_keep_their_ranges_and_probabilities():
    draws = Draws(tf.constant([5, 5], tf.int64), 1000)
    uniform, symmetric = draws.uniform(2.0, 3.0).numpy(), draws.symmetric(0.5).numpy()
    assert uniform.shape == (1000,) and uniform.min() >= 2.0 and uniform.max() < 3.0
    assert symmetric.min() >= -0.5 and symmetric.max() < 0.5 and symmetric.min() < -0.4 and symmetric.max() > 0.4
    assert set(draws.applied(0.0).numpy()) == {0.0} and set(draws.applied(1.0).numpy()) == {1.0}
    assert 0.25 < draws.applied(0.3).numpy().mean() < 0.35
    beta = draws.beta(0.5).numpy()
    assert beta.shape == (1000,) and beta.min() >= 0.0 and beta.max() <= 1.0


def test_more_scalar_draws_than_the_block_holds_is_an_error():
    draws = Draws(tf.constant([1, 1], tf.int64), 2)
    for _ in range(draws_module._SCALAR_DRAWS):
        draws.uniform()
    with pytest.raises(RuntimeError, match="raise _SCALAR_DRAWS"):
        draws.uniform()


def test_boxes_are_rectangles_of_at_most_their_area():
    size, area = 40, 0.1
    areas = tf.constant([area] * 63 + [0.0])
    masks = Draws(tf.constant([2, 6], tf.int64), 64).boxes(float(size), float(size), areas).numpy()
    assert masks.shape == (64, size, size, 1)
    masks = masks[..., 0]
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    # One rectangle each: every pixel in a covered row and a covered column is covered.
    np.testing.assert_array_equal(masks, rows[:, :, None] & cols[:, None, :])
    covered = masks.mean(axis=(1, 2))
    # Sides up to sqrt(3 area) of the image, each rounded up to whole pixels; clipped at the image's edges.
    assert covered.max() <= area + (2 * (3 * area) ** 0.5 * size + 1) / size ** 2
    assert covered[:-1].min() > 0 and covered[-1] == 0
    assert covered[:-1].mean() > area / 2
