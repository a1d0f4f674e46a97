"""The Trainer's tf.data input pipeline and augmentation, on real encoded examples."""

import dataclasses
import io
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components.trainer import augment, dataset, image_ops, preview
from components.trainer.params import PRESETS, AugmentParams, TrainParams
from tests.conftest import CLASS_COLOURS, REPO_ROOT, encode_image

PARAMS = TrainParams(image_size=32, batch_size=4, weights="none", shuffle_buffer=16, seed=7)
NUM_CLASSES = len(CLASS_COLOURS)
NUM_EXAMPLES = 4 * NUM_CLASSES  # 4 images per class in the examples file
NONE = AugmentParams.from_preset("none")


def _collect(ds):
    images, labels = [], []
    for batch_images, batch_labels in ds:
        images.append(batch_images.numpy())
        labels.append(batch_labels.numpy())
    return np.concatenate(images), np.concatenate(labels)


def _dataset(examples_file, transform_output, params=PARAMS, training=True):
    return dataset.make_dataset(examples_file, transform_output, params, training=training, num_classes=NUM_CLASSES)


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_batches_have_the_right_shapes_dtypes_and_ranges(examples_file, transform_output, cache):
    params = dataclasses.replace(PARAMS, cache=cache)
    for training in (True, False):
        ds = _dataset(examples_file, transform_output, params, training)
        images_spec, labels_spec = ds.element_spec
        assert images_spec.dtype == tf.float32 and images_spec.shape.as_list() == [None, 32, 32, 3]
        assert labels_spec.dtype == tf.float32 and labels_spec.shape.as_list() == [None, NUM_CLASSES]
        images, labels = _collect(ds)
        assert images.shape == (NUM_EXAMPLES, 32, 32, 3)
        assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 255.0
        # Hard one-hot labels (standard preset: no mixing), every class present.
        assert set(labels.sum(axis=1)) == {1.0} and set(labels.max(axis=1)) == {1.0}
        assert set(labels.argmax(axis=1)) == {0, 1, 2}


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_every_pipeline_runs_without_the_autotuning_thread(examples_file, transform_output, cache):
    # With it, Keras' end of each fit and validation pass could wait out the thread's sleep.
    params = dataclasses.replace(PARAMS, cache=cache)
    pipelines = [_dataset(examples_file, transform_output, params, training) for training in (True, False)]
    pipelines.append(dataset.decoded_images(examples_file, params, shuffle_files=True))  # the preview's
    for ds in pipelines:
        assert ds.options().autotune.enabled is False
        assert ds.repeat().options().autotune.enabled is False  # as fit reads it


def _map_functions(ds):
    """The FunctionDefs of the map ops in ``ds``'s graph."""
    graph = tf.compat.v1.GraphDef.FromString(
        tf.raw_ops.DatasetToGraphV2(input_dataset=tf.data.experimental.to_variant(ds)).numpy())
    functions = {function.signature.name: function for function in graph.library.function}
    return [functions[node.attr["f"].func.name] for node in graph.node if "MapDataset" in node.op]


@pytest.mark.parametrize("cache", ["memory", "none"])
def test_every_map_function_is_instantiated_for_one_device(examples_file, transform_output, cache):
    # Instantiated as multi-device functions (Dataset.map's way), they would be optimised anew for every
    # iterator Keras starts: each fit and each validation pass.
    params = dataclasses.replace(PARAMS, cache=cache)
    for training in (True, False):
        functions = _map_functions(_dataset(examples_file, transform_output, params, training))
        assert len(functions) == 2  # decode, then the batch map
        assert all(function.attr["experimental_ints_on_device"].b for function in functions)


def test_parallel_map_gives_what_dataset_map_gives():
    pairs = tf.data.Dataset.range(10).map(lambda i: ((i, tf.strings.as_string(i)), tf.cast(i, tf.float32) / 2))

    def fn(pair, half):
        number, text = pair
        return {"sum": tf.cast(number, tf.float32) + half, "text": tf.strings.join([text, "!"])}, tf.fill([3], number)

    def values(ds):
        return [tf.nest.map_structure(lambda t: np.asarray(t).tolist(), element) for element in ds]

    expected = pairs.map(fn, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    mapped = dataset.parallel_map(pairs, fn, deterministic=True)
    assert mapped.element_spec == expected.element_spec
    assert values(mapped) == values(expected)
    # One tensor per element is passed as one argument; the cardinality is kept.
    doubled = dataset.parallel_map(tf.data.Dataset.range(4), lambda i: i * 2)
    assert values(doubled) == [0, 2, 4, 6] and doubled.cardinality().numpy() == 4


def test_parallel_map_refuses_elements_that_are_not_dense_tensors():
    ragged = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1], [2, 3]]))
    with pytest.raises(TypeError, match="dense tensors"):
        dataset.parallel_map(ragged, lambda row: row)


@pytest.mark.parametrize("mixing", [False, True])
def test_class_weights_ride_in_the_batches_as_each_labels_average(examples_file, transform_output, mixing):
    class_weights = [0.5, 2.0, 4.0]
    augment_params = AugmentParams.from_preset("heavy", mixup_prob=0.5, cutmix_prob=0.5) if mixing else NONE
    params = dataclasses.replace(PARAMS, augment=augment_params)
    ds = dataset.make_dataset(examples_file, transform_output, params, training=True, num_classes=NUM_CLASSES,
                              class_weights=class_weights)
    assert ds.element_spec[2].shape.as_list() == [None]
    labels, weights = [], []
    for _, batch_labels, batch_weights in ds:
        labels.append(batch_labels.numpy())
        weights.append(batch_weights.numpy())
    labels, weights = np.concatenate(labels), np.concatenate(weights)
    np.testing.assert_allclose(weights, labels @ np.array(class_weights), rtol=1e-6)
    hard = labels.max(axis=1) == 1.0
    np.testing.assert_allclose(weights[hard], np.array(class_weights)[labels[hard].argmax(axis=1)], rtol=1e-6)
    if mixing:  # a mixed image weighs between its two classes' weights, not as its larger share's
        assert (~hard).any() and len(set(np.round(weights[~hard], 4)) - set(class_weights)) > 0


def test_class_weights_must_give_one_weight_per_class(examples_file, transform_output):
    with pytest.raises(ValueError, match="2 class weights given for 3 classes"):
        dataset.make_dataset(examples_file, transform_output, PARAMS, training=True, num_classes=NUM_CLASSES,
                             class_weights=[1.0, 2.0])


def test_labels_follow_the_learned_vocabulary(examples_file, transform_output):
    vocabulary = [v.decode() for v in transform_output.vocabulary_by_name("label")]
    assert vocabulary[0] == "red"  # most frequent label first
    images, labels = _collect(_dataset(examples_file, transform_output, training=False))
    channel_of = {"red": 0, "green": 1, "blue": 2}  # each class has a dominant colour channel
    for image, label in zip(images, labels.argmax(axis=1)):
        assert int(np.argmax(image.mean(axis=(0, 1)))) == channel_of[vocabulary[label]]


def test_eval_data_is_not_augmented_and_in_file_order(examples_file, transform_output):
    images, _ = _collect(_dataset(examples_file, transform_output, training=False))
    records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(examples_file, "GZIP")]
    expected = [image_ops.decode_and_resize(r.features.feature["image"].bytes_list.value[0], 32).numpy()
                for r in records]
    np.testing.assert_array_equal(images, np.stack(expected))


def test_disk_cache_gives_the_same_batches_as_memory_and_is_reused(examples_file, transform_output, tmp_path):
    cache = tmp_path / "cache"
    disk_params = dataclasses.replace(PARAMS, cache=str(cache))
    memory = {}
    for training in (True, False):
        memory[training] = _collect(_dataset(examples_file, transform_output, PARAMS, training=training))
        disk = _collect(_dataset(examples_file, transform_output, disk_params, training=training))
        np.testing.assert_array_equal(memory[training][0], disk[0])
        np.testing.assert_array_equal(memory[training][1], disk[1])
    # One cache per split, however alike their examples: evaluation never reads training images.
    written = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    indexes = sorted(name for name in written if name.endswith(".index"))
    assert [name.split("_")[0] for name in indexes] == ["eval", "train"]
    # A second run reads the finished caches instead of writing them again.
    again = _collect(_dataset(examples_file, transform_output, disk_params))
    np.testing.assert_array_equal(again[0], memory[True][0])
    assert {path.name: path.stat().st_mtime_ns for path in cache.iterdir()} == written


def test_disk_cache_starts_afresh_for_another_image_size_or_other_examples(examples_file, transform_output,
                                                                           tmp_path):
    disk_params = dataclasses.replace(PARAMS, cache=str(tmp_path / "cache"))
    _collect(_dataset(examples_file, transform_output, disk_params))
    larger = _collect(_dataset(examples_file, transform_output, dataclasses.replace(disk_params, image_size=40)))
    assert larger[0].shape[1:] == (40, 40, 3)
    copied = tmp_path / "copy" / "examples.gz"
    copied.parent.mkdir()
    shutil.copyfile(examples_file, copied)
    _collect(_dataset(str(copied), transform_output, disk_params))
    assert len(list((tmp_path / "cache").glob("train_*.index"))) == 3


def test_a_disk_cache_written_with_another_seed_gives_this_seeds_batches(examples_file, transform_output,
                                                                         tmp_path):
    # Several shards, as ExampleGen writes them: the cache must not keep a seed's order of the files.
    records = [record.numpy() for record in tf.data.TFRecordDataset(examples_file, "GZIP")]
    shards = tmp_path / "shards"
    shards.mkdir()
    for index in range(3):
        with tf.io.TFRecordWriter(str(shards / f"data-{index}.gz"), options="GZIP") as writer:
            for record in records[index::3]:
                writer.write(record)
    pattern = str(shards / "*.gz")
    disk = dataclasses.replace(PARAMS, cache=str(tmp_path / "cache"))
    _collect(_dataset(pattern, transform_output, dataclasses.replace(disk, seed=8)))  # writes the cache
    from_cache = _collect(_dataset(pattern, transform_output, disk))  # seed 7 reads it
    assert len(list((tmp_path / "cache").glob("train_*.index"))) == 1
    in_memory = _collect(_dataset(pattern, transform_output, PARAMS))
    np.testing.assert_array_equal(from_cache[0], in_memory[0])
    np.testing.assert_array_equal(from_cache[1], in_memory[1])


def test_training_batches_are_reproducible_from_the_seed(examples_file, transform_output):
    heavy = dataclasses.replace(PARAMS, augment=AugmentParams.from_preset("heavy"))
    first = _collect(_dataset(examples_file, transform_output, heavy))
    second = _collect(_dataset(examples_file, transform_output, heavy))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    third = _collect(_dataset(examples_file, transform_output, dataclasses.replace(heavy, seed=8)))
    assert not np.array_equal(first[0], third[0])
    # The seed fixes the shuffle order too (labels unmixed, so the order shows).
    plain = dataclasses.replace(PARAMS, augment=NONE)
    orders = [_collect(_dataset(examples_file, transform_output, dataclasses.replace(plain, seed=seed)))[1].argmax(1)
              for seed in (7, 7, 8)]
    np.testing.assert_array_equal(orders[0], orders[1])
    assert not np.array_equal(orders[0], orders[2])


def test_augmentation_changes_images_but_not_hard_labels(examples_file, transform_output):
    plain = dataclasses.replace(PARAMS, augment=NONE)
    augmented_images, augmented_labels = _collect(_dataset(examples_file, transform_output, PARAMS))
    plain_images, plain_labels = _collect(_dataset(examples_file, transform_output, plain))
    # Same seed, same shuffle: the labels line up exactly; the pixels do not.
    np.testing.assert_array_equal(augmented_labels, plain_labels)
    assert not np.allclose(augmented_images, plain_images)


def test_each_epoch_draws_new_augmentations(examples_file, transform_output):
    ds = _dataset(examples_file, transform_output, dataclasses.replace(PARAMS, shuffle_buffer=1))
    first_epoch, second_epoch = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(first_epoch[1], second_epoch[1])
    assert not np.allclose(first_epoch[0], second_epoch[0])


def _batch(size=24):
    colours = [(250, 5, 5), (0, 0, 0), (255, 255, 255), (10, 120, 240)]
    images = tf.stack([image_ops.decode_and_resize(encode_image(c, size=(size, size)), size) for c in colours])
    return images, tf.one_hot([0, 1, 2, 0], NUM_CLASSES)


def _every_op_always(**overrides) -> AugmentParams:
    """Every op on every image, at full strength."""
    always = {name: 1.0 for name in PRESETS["none"] if name.endswith(("_prob", "_flip"))}
    always.update(mixup_prob=0.5, cutmix_prob=0.5)
    return AugmentParams.from_preset("heavy", **{**always, **overrides})


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("preset", ["light", "standard", "heavy", "every_op"])
def test_augmentation_stays_finite_and_in_range(seed, preset):
    params = _every_op_always() if preset == "every_op" else AugmentParams.from_preset(preset)
    images, labels = _batch()
    out, out_labels = augment.augment_batch(images, labels, tf.constant([seed, 99], tf.int64), params)
    assert out.shape == (4, 24, 24, 3)
    assert np.isfinite(out.numpy()).all() and out.numpy().min() >= 0.0 and out.numpy().max() <= 255.0
    np.testing.assert_allclose(out_labels.numpy().sum(axis=1), 1.0, atol=1e-5)
    assert out_labels.numpy().min() >= 0.0
    # The warp and the colour map clip their results, and XLA's clip turns NaN into 0:
    # their sampling points and colour maps must be finite themselves.
    points, colour = augment._image_maps(tf.constant([seed, 99], tf.int64), tf.shape(images),
                                         augment.image_means(images), params)
    for maps in (*points, *colour):
        assert np.isfinite(maps.numpy()).all()


def test_mixup_and_cutmix_give_soft_labels_from_the_partner_image():
    images, labels = _batch()
    _out, soft = augment.augment_batch(images, labels, tf.constant([3, 4], tf.int64), _every_op_always())
    soft = soft.numpy()
    partners = np.roll(labels.numpy(), 1, axis=0)  # the image before (the first image's is the last)
    assert (soft.max(axis=1) < 1.0).any()  # some labels are mixed
    for row, label, partner in zip(soft, labels.numpy(), partners):
        # A convex combination of the image's own label and its partner's.
        lam = row @ label if not np.array_equal(label, partner) else 1.0
        np.testing.assert_allclose(row, lam * label + (1 - lam) * partner, atol=1e-5)


def test_no_op_changes_labels_without_mixing():
    images, labels = _batch()
    params = _every_op_always(mixup_prob=0.0, cutmix_prob=0.0)
    _, out_labels = augment.augment_batch(images, labels, tf.constant([5, 6], tf.int64), params)
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
_MANY = 64  # images per batch: enough to tell a probability of 0.5 from 0 or 1


def _many_random_images(size=32):
    images = tf.random.stateless_uniform([_MANY, size, size, 3], seed=[3, 1], minval=30.0, maxval=225.0)
    return tf.round(images), tf.eye(_MANY)  # every image its own class: any mixing shows in the labels


def _changed(params, size=32):
    """Which images of a random batch ``params`` changes (pixels or label)."""
    images, labels = _many_random_images(size)
    out, out_labels = augment.augment_batch(images, labels, tf.constant([11, 5], tf.int64), params)
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


def test_zoom_scales_about_the_centre_without_shifting():
    images, labels = _many_random_images(size=33)
    out, _ = augment.augment_batch(images, labels, tf.constant([6, 1], tf.int64),
                                   AugmentParams.from_preset("none", zoom_prob=1.0, zoom=0.3))
    assert not np.array_equal(out.numpy(), images.numpy())
    np.testing.assert_allclose(out.numpy()[:, 16, 16], images.numpy()[:, 16, 16], atol=1e-3)


def test_erasing_stays_within_its_largest_area():
    images, labels = _many_random_images(size=64)
    params = AugmentParams.from_preset("none", erase_prob=1.0, erase_area=0.02)
    out, _ = augment.augment_batch(images, labels, tf.constant([2, 9], tf.int64), params)
    erased = (out.numpy() != images.numpy()).any(axis=3).mean(axis=(1, 2))
    # Whole pixels round the rectangle's sides up: allow a pixel's width on each side.
    assert erased.max() <= 0.02 + 2 * (0.02 ** 0.5 * 3 ** 0.5) / 64 and erased.min() > 0


def test_mixup_and_cutmix_keep_their_probabilities_and_labels_match_the_pixels():
    # Flat images, each its own grey: a pixel's value tells how much of it is the image itself.
    greys = np.arange(_MANY, dtype=np.float32) * 3.0 + 20.0
    images = tf.constant(np.broadcast_to(greys[:, None, None, None], (_MANY, 16, 16, 3)))
    params = AugmentParams.from_preset("none", mixup_prob=0.5, mixup_alpha=1.0, cutmix_prob=0.5, cutmix_alpha=1.0)
    out, labels = augment.augment_batch(images, tf.eye(_MANY), tf.constant([4, 4], tf.int64), params)
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
    out, labels = augment.augment_batch(images, tf.eye(batch), tf.constant([1, 3], tf.int64), params)
    assert (np.diag(labels.numpy()) < 1.0 - 1e-6).all()
    assert (np.abs(out.numpy() - images.numpy()).max(axis=(1, 2, 3)) > 1e-3).all()
    # A batch of one has no other image to mix with: it passes unchanged.
    alone, alone_label = augment.augment_batch(images[:1], tf.eye(1), tf.constant([1, 3], tf.int64), params)
    np.testing.assert_array_equal(alone.numpy(), images.numpy()[:1])
    np.testing.assert_array_equal(alone_label.numpy(), [[1.0]])


def _reference_blur(image, sigma, radius):
    """A Gaussian blur of one image [h, w, c] in NumPy: mirrored borders, x then y."""
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / max(sigma, 1e-3)) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(image.astype(np.float64), [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    height, width = image.shape[:2]
    across = sum(padded[:, tap:tap + width] * k for tap, k in enumerate(kernel))
    return sum(across[tap:tap + height] * k for tap, k in enumerate(kernel))


@pytest.mark.parametrize("blur", [1.5, 2.5, 5.0])
def test_blur_matches_a_reference_gaussian_at_any_sigma_over_a_full_batch(blur):
    # 32 images of 3 channels: kernels of 13 taps or more over 96 channels broke the depthwise convolution.
    images = tf.random.stateless_uniform([32, 40, 40, 3], seed=[8, 2], maxval=255.0)
    params = AugmentParams.from_preset("none", blur_prob=1.0, blur=blur)
    out = augment._blur(images, augment._Draws(tf.constant([4, 2], tf.int64), 32), params).numpy()
    draws = augment._Draws(tf.constant([4, 2], tf.int64), 32)  # the same draws again: each image's sigma
    sigmas = (draws.applied(1.0) * draws.uniform(min(0.1, blur), blur)).numpy()
    assert sigmas.max() > 0.6 * blur  # the widest kernels were drawn
    for image, result, sigma in zip(images.numpy(), out, sigmas):
        np.testing.assert_allclose(result, np.clip(_reference_blur(image, sigma, params.blur_radius), 0, 255),
                                   atol=2e-3)


@pytest.mark.parametrize("flip, axis", [("horizontal_flip", 2), ("vertical_flip", 1)])
def test_flips_mirror_or_keep_each_image(flip, axis):
    images, labels = _batch()
    out, _ = augment.augment_batch(images, labels, tf.constant([5, 6], tf.int64), AugmentParams.from_preset(
        "none", **{flip: 0.5}))
    mirrored = np.flip(images.numpy(), axis=axis)
    results = [np.array_equal(o, i) or np.array_equal(o, m) for o, i, m in zip(out.numpy(), images.numpy(), mirrored)]
    assert all(results)


def test_preset_none_is_the_identity_and_standard_is_the_default():
    images, labels = _batch()
    out, out_labels = augment.augment_batch(images, labels, tf.constant([1, 2], tf.int64), NONE)
    np.testing.assert_array_equal(out, images)
    np.testing.assert_array_equal(out_labels, labels)
    assert not augment.is_active(NONE) and augment.is_active(AugmentParams())
    assert AugmentParams() == AugmentParams.from_preset("standard")


def test_domain_switches_turn_whole_groups_off():
    images, labels = _batch()
    colour_only = AugmentParams.from_preset("heavy", noise_prob=0, blur_prob=0, erase_prob=0, mixup_prob=0,
                                            cutmix_prob=0, geometric=False)
    out, _ = augment.augment_batch(images, labels, tf.constant([1, 2], tf.int64), dataclasses.replace(
        colour_only, color=False))
    np.testing.assert_array_equal(out, images)
    changed, _ = augment.augment_batch(images, labels, tf.constant([1, 2], tf.int64), colour_only)
    assert not np.array_equal(changed, images)


def test_decode_and_resize_handles_grayscale_alpha_and_gif():
    for data in (
        encode_image(image_format="PNG", mode="L"),
        encode_image(image_format="PNG", mode="RGBA"),
        encode_image(image_format="GIF"),
        encode_image(image_format="BMP"),
    ):
        image = image_ops.decode_and_resize(data, 16)
        assert image.shape == (16, 16, 3) and image.dtype == tf.float32
        np.testing.assert_array_equal(image, np.round(image))  # whole numbers: cacheable as uint8


def _checkerboard_png(height, width, cell):
    rows, columns = np.indices((height, width))
    board = ((rows // cell + columns // cell) % 2 * 255).astype(np.uint8)
    return tf.io.encode_png(np.repeat(board[..., None], 3, axis=2)).numpy()


def test_shrinking_averages_fine_detail_instead_of_aliasing():
    """A 1-pixel checkerboard shrunk 3x: sampling would give black and white; averaging gives greys."""
    shrunk = image_ops.decode_and_resize(_checkerboard_png(96, 96, 1), 32).numpy()
    assert shrunk.min() > 64 and shrunk.max() < 192
    # Shrinking one way while growing the other (the bilinear path) averages too.
    mixed = image_ops.decode_and_resize(_checkerboard_png(40, 144, 1), 48).numpy()
    assert np.ptp(mixed) < 128
    # Squares as big as the shrink factor stay black and white.
    assert set(np.unique(image_ops.decode_and_resize(_checkerboard_png(96, 96, 3), 32))) == {0.0, 255.0}


def _photo_jpeg(height, width, mode="RGB"):
    """A JPEG of smooth random colours (a 6x6 grid blown up), which compresses like a photo."""
    rng = np.random.default_rng(height * width)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    small.resize((width, height), Image.BICUBIC).convert(mode).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("height, width, scale", [
    (63, 90, 1),    # short side under 2x the size: decoded whole
    (64, 90, 2),    # exactly 2x: half size is the image size itself
    (130, 200, 4),  # 4x and more: a quarter
    (300, 260, 8),
])
def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_keeps_the_image_size(height, width, scale):
    data = _photo_jpeg(height, width)
    image = image_ops.decode_and_resize(data, 32).numpy()
    scaled = tf.io.decode_jpeg(data, channels=3, ratio=scale)
    assert min(scaled.shape[:2]) >= 32
    expected = scaled if scaled.shape[:2] == (32, 32) else tf.image.resize(scaled, [32, 32], method="area")
    np.testing.assert_array_equal(image, np.round(expected))
    # The same picture as a full decode would give, within a few levels (a side that is not a whole number
    # of scaled pixels ends in a part pixel kept whole, which stretches the picture by under a pixel).
    full = tf.image.resize(tf.io.decode_jpeg(data, channels=3), [32, 32], method="area").numpy()
    assert np.abs(image - full).mean() < 8


def test_a_grayscale_jpeg_decoded_at_a_reduced_scale_still_has_three_channels():
    image = image_ops.decode_and_resize(_photo_jpeg(200, 150, mode="L"), 32).numpy()
    assert image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_an_image_at_the_size_keeps_its_exact_pixels_in_either_dtype():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(pixels).numpy()
    as_float = image_ops.decode_and_resize(encoded, 32)
    as_uint8 = image_ops.decode_and_resize(encoded, 32, tf.uint8)
    assert as_float.dtype == tf.float32 and as_uint8.dtype == tf.uint8
    np.testing.assert_array_equal(as_uint8.numpy(), pixels)
    np.testing.assert_array_equal(as_float.numpy(), pixels.astype(np.float32))
    # Resized images give the same values in either dtype too.
    np.testing.assert_array_equal(image_ops.decode_and_resize(encoded, 20, tf.uint8).numpy(),
                                  image_ops.decode_and_resize(encoded, 20).numpy().astype(np.uint8))


@pytest.mark.parametrize("preset", ["standard", "every_op"])
def test_uint8_pixels_augment_exactly_as_their_float32_values(preset):
    """The pipeline hands cached uint8 batches to augmentation; the float32 path must agree."""
    params = _every_op_always() if preset == "every_op" else AugmentParams.from_preset(preset)
    images, labels = _batch()
    seed = tf.constant([4, 2], tf.int64)
    from_float, float_labels = augment.augment_batch(images, labels, seed, params)
    from_uint8, uint8_labels = augment.augment_batch(tf.cast(images, tf.uint8), labels, seed, params)
    assert from_uint8.dtype == tf.float32
    np.testing.assert_allclose(from_uint8, from_float, atol=1e-3)
    np.testing.assert_array_equal(uint8_labels, float_labels)


def test_means_computed_before_the_cache_give_the_same_augmentation():
    """The pipeline computes each image's mean once, before its cache, and passes it in."""
    params = _every_op_always()
    images, labels = _batch()
    images = tf.cast(images, tf.uint8)
    seed = tf.constant([8, 1], tf.int64)
    given, given_labels = augment.augment_batch(images, labels, seed, params,
                                                means=tf.stack([augment.image_means(image) for image in images]))
    computed, computed_labels = augment.augment_batch(images, labels, seed, params)
    np.testing.assert_allclose(given, computed, atol=1e-3)
    np.testing.assert_array_equal(given_labels, computed_labels)
    # The means do matter: contrast scales about them.
    shifted, _ = augment.augment_batch(images, labels, seed, params, means=augment.image_means(images) + 40.0)
    assert np.abs(shifted.numpy() - computed.numpy()).max() > 1.0


def test_preview_grid_puts_originals_first():
    images, _ = _batch(size=16)
    grid = preview.preview_grid(images, AugmentParams.from_preset("heavy"), versions=3, seed=1)
    assert grid.dtype == tf.uint8 and grid.shape == (4 * 20, 4 * 20, 3)
    tiles = grid.numpy().reshape(4, 20, 4, 20, 3)[:, :16, :, :16].transpose(0, 2, 1, 3, 4)  # [row, column, y, x, 3]
    for row, image in enumerate(images.numpy().astype(np.uint8)):
        np.testing.assert_array_equal(tiles[row, 0], image)  # each row starts with its original
        for column in (1, 2, 3):
            assert not np.array_equal(tiles[row, column], image)  # then augmented versions of it


def test_preview_command_writes_a_png(tmp_path):
    data_dir = tmp_path / "data"
    for label, colour in CLASS_COLOURS.items():
        (data_dir / label).mkdir(parents=True)
        for n in range(2):
            (data_dir / label / f"{n}.jpg").write_bytes(encode_image(colour))
    output = tmp_path / "preview.png"
    assert preview.main(["--data-dir", str(data_dir), "--preset", "heavy", "--image-size", "32",
                         "--count", "4", "--versions", "2", "--output", str(output)]) == 0
    grid = tf.io.decode_png(output.read_bytes())
    assert grid.shape == (4 * 36, 3 * 36, 3)
    assert preview.main(["--data-dir", str(tmp_path / "missing"), "--output", str(output)]) == 2


def test_preview_takes_the_trainers_augment_flags_and_refuses_bad_numbers(capsys):
    args = preview.build_arg_parser().parse_args(
        ["--data-dir", "d", "--preset", "heavy", "--no-augment-color", "--augment-mixup-prob", "0"])
    assert preview.augment_params(args) == AugmentParams.from_preset("heavy", color=False, mixup_prob=0.0)
    for bad, message in ((["--count", "0"], "must be at least 1"), (["--image-size", "0"], "must be at least 8"),
                         (["--augment-mixup-prob", "0.9", "--augment-cutmix-prob", "0.9"], "at most 1"),
                         (["--image-size", "8", "--augment-blur-prob", "0.5", "--augment-blur", "3"],
                          "less than the image size, 8")):
        with pytest.raises(SystemExit) as exit_info:
            preview.main(["--data-dir", "d"] + bad)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_readme_documents_every_preset():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert all(f"`{name}`" in readme for name in PRESETS)


def _colour_only(**probabilities) -> AugmentParams:
    return AugmentParams.from_preset("none", **probabilities)


def _random_images():
    # Mid-range pixels: no op below pushes them past 0 or 255, so nothing is clipped.
    return tf.random.stateless_uniform([4, 8, 8, 3], seed=[1, 2], minval=70.0, maxval=180.0), tf.one_hot([0] * 4, 2)


def _apply(params):
    images, labels = _random_images()
    out, _ = augment.augment_batch(images, labels, tf.constant([9, 9], tf.int64), params)
    return images.numpy(), out.numpy()


def test_fused_colour_map_brightness_is_a_shift_per_image():
    images, out = _apply(_colour_only(brightness_prob=1.0, brightness=0.05))
    shift = out - images
    for per_image in shift:
        np.testing.assert_allclose(per_image, per_image.flat[0], atol=1e-3)
    assert np.abs(shift).max() > 0


def test_fused_colour_map_contrast_scales_about_the_mean():
    images, out = _apply(_colour_only(contrast_prob=1.0, contrast=0.3))
    for before, after in zip(images, out):
        mean = before.mean()
        factor = (after - mean).ravel() / (before - mean).ravel()
        np.testing.assert_allclose(factor, factor[0], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(after.mean(), mean, atol=1e-2)


def test_fused_colour_map_grayscale_gives_the_luma_in_every_channel():
    images, out = _apply(_colour_only(grayscale_prob=1.0))
    luma = images @ np.array([0.299, 0.587, 0.114], np.float32)
    for channel in range(3):
        np.testing.assert_allclose(out[..., channel], luma, atol=1e-3)


def test_fused_colour_map_hue_keeps_the_luma():
    images, out = _apply(_colour_only(hue_prob=1.0, hue=0.2))
    weights = np.array([0.299, 0.587, 0.114], np.float32)
    assert not np.allclose(out, images, atol=1.0)
    # Y is kept exactly, but for the odd pixel a rotated channel clips at 0 or 255.
    assert np.mean(np.abs(out @ weights - images @ weights) < 0.01) > 0.97


@pytest.mark.parametrize("dtype", [tf.float32, tf.uint8])
@pytest.mark.parametrize("height, width", [(64, 64), (37, 53)])
def test_affine_warp_reproduces_tensorflows_projective_transform_op(height, width, dtype):
    """The XLA warp against ImageProjectiveTransformV3 (bilinear, REFLECT), with
    rotations, scales and shifts far enough to reflect more than once."""
    rng = np.random.default_rng(3)
    batch = 6
    images = tf.constant(rng.integers(0, 256, (batch, height, width, 3)), tf.float32)
    angle, scale = rng.uniform(-3.1, 3.1, batch), rng.uniform(0.3, 2.5, batch)
    shift = rng.uniform(-2.5, 2.5, (batch, 2)) * (width, height)
    cos, sin = np.cos(angle) * scale, np.sin(angle) * scale
    transforms = np.stack([cos, -sin, shift[:, 0], sin, cos, shift[:, 1]], axis=1).astype(np.float32)
    expected = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=np.pad(transforms, [(0, 0), (0, 2)]), output_shape=[height, width],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT",
    )
    # XLA may reorder the float arithmetic: agreement to a few hundredths of a level.
    warped = augment.affine_warp(tf.cast(images, dtype), tf.constant(transforms))
    assert warped.dtype == tf.float32
    np.testing.assert_allclose(warped, expected, atol=0.1)
