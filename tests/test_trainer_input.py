"""The Trainer's tf.data input pipeline and augmentation, on real encoded examples."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import augment, dataset, image_ops
from components.trainer.params import AugmentParams, TrainParams
from tests.conftest import CLASS_COLOURS, encode_image

PARAMS = TrainParams(image_size=32, batch_size=4, weights="none", shuffle_buffer=16, seed=7)
# 4 images per class in the examples file.
NUM_EXAMPLES = 4 * len(CLASS_COLOURS)


def _collect(ds):
    images, labels = [], []
    for batch_images, batch_labels in ds:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def test_batches_have_the_right_shapes_dtypes_and_ranges(examples_file, transform_output):
    for training in (True, False):
        ds = dataset.make_dataset(examples_file, transform_output, PARAMS, training=training)
        images_spec, labels_spec = ds.element_spec
        assert images_spec.dtype == tf.float32 and images_spec.shape.as_list() == [None, 32, 32, 3]
        assert labels_spec.dtype == tf.int64
        images, labels = _collect(ds)
        assert images.shape == (NUM_EXAMPLES, 32, 32, 3)
        assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 255.0
        assert set(labels) == {0, 1, 2}  # three labels, none unknown (-1)


def test_labels_follow_the_learned_vocabulary(examples_file, transform_output):
    vocabulary = [v.decode() for v in transform_output.vocabulary_by_name("label")]
    assert vocabulary[0] == "red"  # most frequent label first
    images, labels = _collect(dataset.make_dataset(examples_file, transform_output, PARAMS, training=False))
    # Each class has a dominant colour channel: red, green or blue.
    channel_of = {"red": 0, "green": 1, "blue": 2}
    for image, label in zip(images, labels):
        assert int(np.argmax(image.mean(axis=(0, 1)))) == channel_of[vocabulary[label]]


def test_eval_data_is_not_augmented_and_in_file_order(examples_file, transform_output):
    images, _ = _collect(dataset.make_dataset(examples_file, transform_output, PARAMS, training=False))
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(examples_file, "GZIP")]
    expected = [image_ops.decode_and_resize(r.features.feature["image"].bytes_list.value[0], 32).numpy() for r in records]
    np.testing.assert_array_equal(images, np.stack(expected))


def test_training_batches_are_reproducible_from_the_seed(examples_file, transform_output):
    first = _collect(dataset.make_dataset(examples_file, transform_output, PARAMS, training=True))
    second = _collect(dataset.make_dataset(examples_file, transform_output, PARAMS, training=True))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    other_seed = dataclasses.replace(PARAMS, seed=8)
    third = _collect(dataset.make_dataset(examples_file, transform_output, other_seed, training=True))
    assert not np.array_equal(first[0], third[0])


def test_augmentation_changes_images_but_not_labels(examples_file, transform_output):
    plain = dataclasses.replace(PARAMS, augment=AugmentParams(enabled=False))
    augmented_images, augmented_labels = _collect(dataset.make_dataset(examples_file, transform_output, PARAMS, True))
    plain_images, plain_labels = _collect(dataset.make_dataset(examples_file, transform_output, plain, True))
    # Same seed, same shuffle: the labels line up; the pixels do not.
    np.testing.assert_array_equal(augmented_labels, plain_labels)
    assert not np.allclose(augmented_images, plain_images)


def test_each_epoch_draws_new_augmentations(examples_file, transform_output):
    no_shuffle = dataclasses.replace(PARAMS, shuffle_buffer=1)
    ds = dataset.make_dataset(examples_file, transform_output, no_shuffle, training=True)
    first_epoch, second_epoch = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(first_epoch[1], second_epoch[1])
    assert not np.allclose(first_epoch[0], second_epoch[0])


def _batch(size=24):
    images = [image_ops.decode_and_resize(encode_image(colour, size=(size, size)), size) for colour in
              [(250, 5, 5), (0, 0, 0), (255, 255, 255), (10, 120, 240)]]
    return tf.stack(images)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_strong_augmentation_stays_finite_and_in_range(seed):
    strong = AugmentParams(rotation=0.5, zoom=0.9, brightness=0.9, contrast=0.9)
    out = augment.augment_batch(_batch(), tf.constant([seed, 99], tf.int64), strong).numpy()
    assert out.shape == (4, 24, 24, 3)
    assert np.isfinite(out).all() and out.min() >= 0.0 and out.max() <= 255.0


def test_flip_only_mirrors_or_keeps_each_image():
    images = _batch()
    flip_only = AugmentParams(horizontal_flip=True, rotation=0, zoom=0, brightness=0, contrast=0)
    out = augment.augment_batch(images, tf.constant([5, 6], tf.int64), flip_only).numpy()
    mirrored = images.numpy()[:, :, ::-1, :]
    for index in range(4):
        assert np.array_equal(out[index], images.numpy()[index]) or np.array_equal(out[index], mirrored[index])


def test_zero_magnitudes_are_the_identity():
    none = AugmentParams(horizontal_flip=False, rotation=0, zoom=0, brightness=0, contrast=0)
    images = _batch()
    np.testing.assert_array_equal(augment.augment_batch(images, tf.constant([1, 2], tf.int64), none), images)


def test_decode_and_resize_handles_grayscale_alpha_and_gif():
    for data in (
        encode_image(image_format="PNG", mode="L"),
        encode_image(image_format="PNG", mode="RGBA"),
        encode_image(image_format="GIF"),
        encode_image(image_format="BMP"),
    ):
        image = image_ops.decode_and_resize(data, 16)
        assert image.shape == (16, 16, 3) and image.dtype == tf.float32
