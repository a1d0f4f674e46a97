"""The entry point: every family composed over a batch, from one seed."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import augmentation
from components.trainer.augmentation import batch
from components.trainer.params import AugmentParams
from tests.components.trainer.augmentation.sample_batches import colour_batch, every_op_always, many_random_images

NONE = AugmentParams.from_preset("none")


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("preset", ["light", "standard", "heavy", "every_op"])
def test_augmentation_stays_finite_and_in_range(seed, preset):
    params = every_op_always() if preset == "every_op" else AugmentParams.from_preset(preset)
    images, labels = colour_batch()
    out, out_labels = augmentation.augment_batch(images, labels, tf.constant([seed, 99], tf.int64), params)
    assert out.shape == (4, 24, 24, 3)
    assert np.isfinite(out.numpy()).all() and out.numpy().min() >= 0.0 and out.numpy().max() <= 255.0
    np.testing.assert_allclose(out_labels.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert out_labels.numpy().min() >= 0.0
    # The warp and the colour map clip their results, and XLA's clip turns NaN into 0:
    # their sampling points and colour maps must be finite themselves.
    points, colour = batch._image_maps(tf.constant([seed, 99], tf.int64), tf.shape(images),
                                       augmentation.image_means(images), params)
    for maps in (*points, *colour):
        assert np.isfinite(maps.numpy()).all()


def test_no_op_changes_labels_without_mixing():
    images, labels = colour_batch()
    params = every_op_always(mixup_prob=0.0, cutmix_prob=0.0)
    _, out_labels = augmentation.augment_batch(images, labels, tf.constant([5, 6], tf.int64), params)
    np.testing.assert_array_equal(out_labels.numpy(), labels.numpy())


# Per op: its probability field, magnitudes that make it visible, and (where it has
# one) the magnitude that makes it do nothing.
_OPS = {
    "horizontal_flip": ("horizontal_flip", {}, None),
    "vertical_flip": ("vertical_flip", {}, None),
    "rotation": ("rotation_prob", {"rotation": 0.1}, {"rotation": 0.0}),
    "zoom": ("zoom_prob", {"zoom": 0.3}, {"zoom": 0.0}),
    "translate": ("translate_prob", {"translate": 0.2}, {"translate": 0.0}),
    "crop": ("crop_prob", {"crop_min_area": 0.3}, {"crop_min_area": 1.0, "crop_aspect": 1.0}),
    "brightness": ("brightness_prob", {"brightness": 0.2}, {"brightness": 0.0}),
    "contrast": ("contrast_prob", {"contrast": 0.4}, {"contrast": 0.0}),
    "saturation": ("saturation_prob", {"saturation": 0.5}, {"saturation": 0.0}),
    "hue": ("hue_prob", {"hue": 0.1}, {"hue": 0.0}),
    "grayscale": ("grayscale_prob", {}, None),
    "noise": ("noise_prob", {"noise": 0.05}, {"noise": 0.0}),
    "blur": ("blur_prob", {"blur": 1.5}, {"blur": 0.0}),
    "erase": ("erase_prob", {"erase_area": 0.3}, {"erase_area": 0.0}),
    "mixup": ("mixup_prob", {"mixup_alpha": 1.0}, None),
    "cutmix": ("cutmix_prob", {"cutmix_alpha": 1.0}, None),
}


def _changed(params, size=32):
    """Which images of a random batch ``params`` changes (pixels or label)."""
    images, labels = many_random_images(size)
    out, out_labels = augmentation.augment_batch(images, labels, tf.constant([11, 5], tf.int64), params)
    pixels_changed = np.abs(out.numpy() - images.numpy()).max(axis=(1, 2, 3)) > 0.5
    return pixels_changed | (np.abs(out_labels.numpy() - labels.numpy()).max(axis=1) > 1e-6)


@pytest.mark.parametrize("op", sorted(_OPS))
def test_each_op_honours_its_probability_and_magnitude(op):
    probability, visible, no_magnitude = _OPS[op]
    assert not _changed(AugmentParams.from_preset("none", **{probability: 0.0}, **visible)).any()
    assert _changed(AugmentParams.from_preset("none", **{probability: 1.0}, **visible)).mean() >= 0.9
    assert 0.3 <= _changed(AugmentParams.from_preset("none", **{probability: 0.5}, **visible)).mean() <= 0.7
    if no_magnitude is not None:
        assert not _changed(AugmentParams.from_preset("none", **{probability: 1.0}, **no_magnitude)).any()


def test_preset_none_is_the_identity_and_standard_is_the_default():
    images, labels = colour_batch()
    out, out_labels = augmentation.augment_batch(images, labels, tf.constant([1, 2], tf.int64), NONE)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(out_labels, labels)
    assert not augmentation.is_active(NONE) and augmentation.is_active(AugmentParams())
    assert AugmentParams() == AugmentParams.from_preset("standard")


def test_domain_switches_turn_whole_groups_off():
    images, labels = colour_batch()
    colour_only = AugmentParams.from_preset("heavy", noise_prob=0, blur_prob=0, erase_prob=0, mixup_prob=0,
                                            cutmix_prob=0, geometric=False)
    out, _ = augmentation.augment_batch(images, labels, tf.constant([1, 2], tf.int64), dataclasses.replace(
        colour_only, color=False))
    np.testing.assert_array_equal(out, images)
    changed, _ = augmentation.augment_batch(images, labels, tf.constant([1, 2], tf.int64), colour_only)
    assert not np.array_equal(changed, images)


@pytest.mark.parametrize("preset", ["standard", "every_op"])
def test_uint8_pixels_augment_exactly_as_their_float32_values(preset):
    """The pipeline hands cached uint8 batches to augmentation; the float32 path must agree."""
    params = every_op_always() if preset == "every_op" else AugmentParams.from_preset(preset)
    images, labels = colour_batch()
    seed = tf.constant([4, 2], tf.int64)
    from_float, float_labels = augmentation.augment_batch(images, labels, seed, params)
    from_uint8, uint8_labels = augmentation.augment_batch(tf.cast(images, tf.uint8), labels, seed, params)
    assert from_uint8.dtype == tf.float32
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-3)
    np.testing.assert_array_equal(uint8_labels, float_labels)


def test_means_computed_before_the_cache_give_the_same_augmentation():
    """The pipeline computes each image's mean once, before its cache, and passes it in."""
    params = every_op_always()
    images, labels = colour_batch()
    images = tf.cast(images, tf.uint8)
    seed = tf.constant([8, 1], tf.int64)
    given, given_labels = augmentation.augment_batch(
        images, labels, seed, params, means=tf.stack([augmentation.image_means(image) for image in images]))
    computed, computed_labels = augmentation.augment_batch(images, labels, seed, params)
    np.testing.assert_allclose(given, computed, atol=1e-3)
    np.testing.assert_array_equal(given_labels, computed_labels)
    # The means do matter: contrast scales about them.
    shifted, _ = augmentation.augment_batch(images, labels, seed, params,
                                            means=augmentation.image_means(images) + 40.0)
    assert np.abs(shifted.numpy() - computed.numpy()).max() > 1.0


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    images, labels = colour_batch()
    params = every_op_always()
    first = augmentation.augment_batch(images, labels, tf.constant([7, 7], tf.int64), params)
    again = augmentation.augment_batch(images, labels, tf.constant([7, 7], tf.int64), params)
    other = augmentation.augment_batch(images, labels, tf.constant([7, 8], tf.int64), params)
    for same, repeated in zip(first, again):
        np.testing.assert_array_equal(same, repeated)
    assert not np.array_equal(first[0], other[0])
