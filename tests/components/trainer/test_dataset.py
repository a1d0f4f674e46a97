"""The Trainer's tf.data input pipeline, on real encoded examples."""

import dataclasses
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from tfx.types import artifact_utils

from components import image_bytes
from components.trainer import dataset
from components.trainer.params import AugmentParams, TrainParams
from tests.helpers import (
    CLASS_COLOURS,
    build_transform_output,
    encode_distinct_image,
    run_ingest,
    run_validator,
    write_image_folder,
)

# A shuffle buffer of 15 decoded 32-pixel images.
PARAMS = TrainParams(image_size=32, batch_size=4, weights="none", shuffle_buffer_mb=0.05, seed=7)
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
    expected = [image_bytes.decode_and_resize(r.features.feature["image"].bytes_list.value[0], 32).numpy()
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
    ds = _dataset(examples_file, transform_output, dataclasses.replace(PARAMS, shuffle_buffer_mb=0.001))  # one image
    first_epoch, second_epoch = _collect(ds), _collect(ds)
    np.testing.assert_array_equal(first_epoch[1], second_epoch[1])
    assert not np.allclose(first_epoch[0], second_epoch[0])


def _distinct_classes_per_batch(label_batches) -> float:
    """The mean number of classes in a batch (full batches only)."""
    return float(np.mean([len(set(labels)) for labels in label_batches]))


@pytest.fixture(scope="module")
def class_sorted_examples(tmp_path_factory):
    """A class-sorted folder (8 classes x 40 distinct images, listed class by class) through the
    real ingest and validator executors: the validated training split, its labels' Transform
    output, and the same records rewritten in class order (the way a folder lists them)."""
    colours = [(40 + 25 * i, 200 - 20 * i, (90 * i) % 256) for i in range(8)]
    files = {f"class_{c}/{n:03d}.jpg": encode_distinct_image(colours[c], seed=100 * c + n, size=(24, 24))
             for c in range(8) for n in range(40)}
    root = tmp_path_factory.mktemp("class_sorted")
    ingested = run_ingest(write_image_folder(root / "data", files), root / "ingested", return_artifact=True)
    validated, report = run_validator(ingested, root, seed=3)
    assert report["counts"]["files_rejected"] == 0
    pattern = os.path.join(artifact_utils.get_split_uri([validated], "train"), "*")
    records = [r.numpy() for r in tf.data.TFRecordDataset(tf.io.gfile.glob(pattern))]
    label_of = {r: tf.train.Example.FromString(r).features.feature["label"].bytes_list.value[0] for r in records}
    in_class_order = str(root / "class_order.tfrecord")
    with tf.io.TFRecordWriter(in_class_order) as writer:
        for record in sorted(records, key=lambda r: label_of[r]):
            writer.write(record)
    transform = build_transform_output([label.decode() for label in label_of.values()], str(root / "transform"))
    return pattern, in_class_order, transform, [label_of[r] for r in records]


def test_batches_are_as_mixed_as_a_uniform_shuffle_though_the_buffer_holds_a_sixteenth(class_sorted_examples):
    pattern, in_class_order, transform, labels = class_sorted_examples
    batch = 16
    params = dataclasses.replace(PARAMS, batch_size=batch, augment=NONE, cache="memory")
    # The buffer holds 16 images of a split of about 256: far from the whole of it.
    params = dataclasses.replace(params, shuffle_buffer_mb=16 * dataset.decoded_bytes(params) / 2**20)
    plan = dataset.plan_input(params, len(labels))
    assert plan.shuffle_buffer == 16 and not plan.whole_split

    def mix(files) -> float:
        ds = dataset.make_dataset(files, transform, params, training=True, num_classes=8, plan=plan)
        return _distinct_classes_per_batch(
            [b.numpy().argmax(1) for _, b in ds if len(b) == batch])

    rng = np.random.default_rng(0)
    full = len(labels) // batch * batch
    uniform = np.mean([_distinct_classes_per_batch(np.reshape(rng.permutation(labels)[:full], (-1, batch)))
                       for _ in range(500)])
    assert uniform > 6.5  # 16 draws from 8 classes
    assert abs(mix(pattern) - uniform) < 0.6  # here: 7.20 against 7.11
    # The same buffer over the records in the folder's class order mixes two or three classes a batch.
    assert mix(in_class_order) < uniform / 2  # here: 2.60
