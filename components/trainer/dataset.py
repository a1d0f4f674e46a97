"""The Trainer's ``tf.data`` input pipeline over the validated TFRecord examples.

    list shards (shuffled) -> parallel interleaved reads (TFRecordDataset's own)
    -> parallel parse + decode + resize to uint8 (+ its mean, when augmentation changes colours)
    -> [cache] -> shuffle -> batch
    -> label ids (Transform) and one-hot, then, for training only, augmentation
       (vectorised per batch, uint8 in, float32 out) and class weights, in one map
    -> prefetch

Each stage costs time to start and to pass elements through, so work that
follows the same path shares one ``map``.

Order: the validator writes each split as shards whose records are in an
order a hash of the seed and each path fixes, so the records come in a random
order however the folder was listed (class by class), and a shuffle buffer
that holds a small share of the split still gives batches as mixed as a full
shuffle's.  The buffer is sized in bytes from the memory at hand
(``plan_input``), and holds the whole split when it fits.

Decoded images are cached as uint8 (a quarter of float32's memory) before
augmentation, so from the second epoch on only augmentation runs; with
``cache: auto`` only when both splits fit in a share of the free memory.
Without a cache, the encoded records are shuffled instead (far smaller than
pixels).

Every pipeline here runs without tf.data's autotuning thread (see
``without_autotune_thread``): AUTOTUNE then sizes the parallel maps to the
cores and the prefetch buffer grows as the reader needs. Their maps are
instantiated for one device, not as multi-device functions (see
``parallel_map``): Keras starts a new iterator per ``fit`` and per validation
pass, and each instantiates the maps anew.
"""

import dataclasses
import hashlib
import os
from collections.abc import Sequence
from typing import Optional, Union

import tensorflow as tf
import tensorflow_transform as tft

from components import features, image_bytes, splits
from components.example_records import compression_of, example_files
from components.trainer import augmentation, memory
from components.trainer.params import TrainParams

_AUTOTUNE = tf.data.AUTOTUNE
# Shares of the free memory: the shuffle buffer's, and what 'cache: auto' may fill with both splits.
SHUFFLE_SHARE = 1 / 8
CACHE_SHARE = 1 / 4
# Bytes a buffered element costs beyond its pixels (tensor headers, the label string).
_ELEMENT_OVERHEAD = 256
# Shards read at once: more only costs read buffers.
_PARALLEL_READS = 8
_PARSE_SPEC = {
    features.IMAGE: tf.io.FixedLenFeature([], tf.string),
    features.LABEL: tf.io.FixedLenFeature([], tf.string),
}


# Attributes of the functions ``parallel_map`` traces: a tf.data function (as
# ``Dataset.map`` marks its own) that tf.data instantiates for one device.
_ONE_DEVICE_MAP_FUNCTION = {"_tf_data_function": True, "experimental_ints_on_device": True}


def parallel_map(ds: tf.data.Dataset, fn, deterministic: Optional[bool] = None) -> tf.data.Dataset:
    """``ds.map(fn, num_parallel_calls=AUTOTUNE, deterministic=deterministic)`` for
    elements and results made of tensors, tuples and dicts, with ``fn`` instantiated
    for the one device the pipeline runs on, and traced without AutoGraph (these
    functions hold no Python control flow over tensors, and the rewrite costs a
    sixth of the time it takes to build a pipeline).

    Why: tf.data instantiates a ``Dataset.map`` function as a multi-device function,
    anew for every iterator, and Keras starts one per ``fit`` and per validation
    pass. That instantiation runs Grappler and the graph optimisation passes over
    the function and each one it calls (the decode's branches, the augmentation's
    XLA programs): on 2 cores, about 0.15 s per training iterator, a seventh of 5
    epochs over hymenoptera. tf.data instantiates a function that carries the
    ``experimental_ints_on_device`` attribute for its one device instead (on the
    host CPU, where pipelines run, the attribute changes nothing else). The batches
    are the same. ``Dataset.map`` takes no function attributes, so this traces
    ``fn`` itself and builds the ``ParallelMapDatasetV2`` op that ``map`` builds.
    """
    in_specs = tf.nest.flatten(ds.element_spec)
    if not all(isinstance(spec, tf.TensorSpec) for spec in in_specs):
        raise TypeError(f"parallel_map takes elements of dense tensors, not {ds.element_spec}.")

    def from_components(*components):
        element = tf.nest.pack_sequence_as(ds.element_spec, list(components))
        # A tuple element is passed as arguments, as ``Dataset.map`` does.
        return fn(*element) if isinstance(element, tuple) else fn(element)

    from_components.__name__ = getattr(fn, "__name__", "map_function")  # names the traced function
    traced = tf.function(from_components, input_signature=in_specs, autograph=False,
                         experimental_attributes=_ONE_DEVICE_MAP_FUNCTION).get_concrete_function()
    # The traced function returns its results flattened, in tf.nest's order.
    out_specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), traced.structured_outputs)
    flat_out = tf.nest.flatten(out_specs)
    variant = tf.raw_ops.ParallelMapDatasetV2(
        input_dataset=tf.data.experimental.to_variant(ds),
        other_arguments=traced.captured_inputs,
        num_parallel_calls=tf.constant(_AUTOTUNE, tf.int64),
        f=traced,
        output_types=[spec.dtype for spec in flat_out],
        output_shapes=[spec.shape for spec in flat_out],
        deterministic={None: "default", True: "true", False: "false"}[deterministic],
        preserve_cardinality=True,
    )
    return tf.data.experimental.from_variant(variant, out_specs)


def without_autotune_thread(ds: tf.data.Dataset) -> tf.data.Dataset:
    """``ds`` with tf.data's autotuning thread switched off. AUTOTUNE parallel
    calls then run one per core (up to 16) and an AUTOTUNE prefetch still grows
    its buffer whenever the reader finds it empty.

    Why: in TensorFlow 2.16, destroying an iterator can wait out that thread's
    current sleep, which doubles up to 60 s as the iterator ages. The thread is
    woken by the cancellation before the cancellation is recorded, finds none,
    and sleeps again. Keras destroys an iterator at the end of every ``fit``
    and every validation pass, so in a third to a half of them training paused
    for up to as long as that iterator had run. On 2 cores the default sizes
    read as fast as the tuned ones.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def disk_cache_prefix(cache_dir: str, file_patterns: Union[str, list[str]], image_size: int, split: str,
                      with_means: bool) -> str:
    """Where one pipeline's disk cache lives in ``cache_dir``: a file set named by
    the split, the image size, what each element holds and a fingerprint of the
    example files (paths and sizes). Any change starts a new cache rather than
    reading one made for other data, and training and evaluation never share one."""
    fingerprint = hashlib.sha256()
    for path in example_files(file_patterns):
        fingerprint.update(f"{path}\0{tf.io.gfile.stat(path).length}\0".encode())
    contents = "_means" if with_means else ""
    tf.io.gfile.makedirs(cache_dir)
    return os.path.join(cache_dir, f"{split}_{image_size}px{contents}_{fingerprint.hexdigest()[:16]}")


@dataclasses.dataclass(frozen=True)
class InputPlan:
    """What the training input holds in memory, chosen for the data and the memory at hand."""

    cache_dir: Optional[str]  # "" in memory, a directory, or None: no cache
    shuffle_buffer: int  # elements
    whole_split: bool  # the buffer holds every training example
    element_bytes: int  # what one buffered element costs

    def describe(self) -> str:
        cache = {None: "no cache", "": "decoded images cached in memory"}.get(self.cache_dir,
                                                                              f"disk cache in {self.cache_dir}")
        held = "the whole split" if self.whole_split else "part of the split"
        return (f"{cache}; shuffle buffer {self.shuffle_buffer} images ({held}, "
                f"{self.shuffle_buffer * self.element_bytes / 1e6:.0f} MB)")


def decoded_bytes(params: TrainParams) -> int:
    """Memory one decoded, resized uint8 image costs in a cache or buffer."""
    return params.image_size * params.image_size * 3 + _ELEMENT_OVERHEAD


def plan_input(params: TrainParams, train_examples: Optional[int] = None, eval_examples: int = 0,
               train_bytes: int = 0, available: Optional[int] = None) -> InputPlan:
    """The cache and the shuffle buffer for ``train_examples`` training examples
    (``train_bytes`` in their record files) and ``eval_examples`` eval ones, given
    ``available`` bytes of memory (default: what is free now)."""
    available = memory.available_bytes() if available is None else available
    cache_dir = params.cache_dir
    if params.cache == "auto" and train_examples is not None:
        fits = (train_examples + eval_examples) * decoded_bytes(params) <= available * CACHE_SHARE
        cache_dir = "" if fits else None
    # Cached, the buffer holds decoded images; uncached, encoded records.
    per_element = decoded_bytes(params) if cache_dir is not None else max(
        1, train_bytes // max(1, train_examples or 1)) + _ELEMENT_OVERHEAD
    budget = params.shuffle_buffer_mb * 2**20 if params.shuffle_buffer_mb else available * SHUFFLE_SHARE
    buffer = max(1, int(budget // per_element))
    whole = train_examples is not None and buffer >= train_examples
    if whole:
        buffer = max(1, train_examples)
    return InputPlan(cache_dir, buffer, whole, per_element)


def label_ids(labels: tf.Tensor, tft_output: tft.TFTransformOutput) -> tf.Tensor:
    """Maps ``[batch]`` label strings to vocabulary indices with Transform's own graph."""
    transformed = tft_output.transform_features_layer()({features.LABEL: tf.expand_dims(labels, -1)})
    return tf.reshape(transformed[features.LABEL_ID], [-1])


def decoded_images(file_patterns: Union[str, list[str]], params: TrainParams, shuffle_files: bool,
                   with_means: bool = False, record_buffer: int = 0) -> tf.data.Dataset:
    """Unbatched ``(uint8 image [s, s, 3], label string)`` pairs from example files,
    each with its image's ``augmentation.image_means`` if ``with_means``; the encoded
    records shuffled in a buffer of ``record_buffer`` first, when it is not 0."""
    shards = example_files(file_patterns)
    files = tf.data.Dataset.from_tensor_slices(shards)
    if shuffle_files:
        files = files.shuffle(len(shards), seed=params.seed, reshuffle_each_iteration=True)
    # Several shards read in parallel, their records interleaved in a fixed order.
    records = tf.data.TFRecordDataset(files, compression_type=compression_of(shards),
                                      num_parallel_reads=min(len(shards), _PARALLEL_READS))
    if record_buffer:
        records = records.shuffle(record_buffer, seed=params.seed, reshuffle_each_iteration=True)

    def decode(record):
        example = tf.io.parse_single_example(record, _PARSE_SPEC)
        image = image_bytes.decode_and_resize(example[features.IMAGE], params.image_size, tf.uint8)
        if with_means:
            return image, example[features.LABEL], augmentation.image_means(image)
        return image, example[features.LABEL]

    # The examples come from the image validator: every one decodes.
    images = parallel_map(records, decode, deterministic=True)
    # Options pass down to every pipeline built on this one.
    return without_autotune_thread(images)


def make_dataset(
    file_patterns: Union[str, list[str]],
    tft_output: tft.TFTransformOutput,
    params: TrainParams,
    training: bool,
    num_classes: int,
    class_weights: Optional[Sequence[float]] = None,
    plan: Optional[InputPlan] = None,
) -> tf.data.Dataset:
    """Returns batches of ``(images float32 [b, s, s, 3] in [0, 255], one-hot labels [b, classes])``,
    and each image's loss weight ``[b]`` as a third element if ``class_weights`` (one per label id).

    Training data is shuffled and augmented; evaluation data is read in a fixed
    order and never augmented.  An image's weight is its label's class weights
    averaged by the label, so an image mixed from two classes (mixup, cutmix)
    weighs what its soft label says, not what its larger share's class does.
    ``plan`` (``plan_input``) sets the cache and the shuffle buffer; by default,
    ``params``' own with a buffer from the free memory.
    """
    if class_weights is not None and len(class_weights) != num_classes:
        raise ValueError(f"{len(class_weights)} class weights given for {num_classes} classes.")
    plan = plan or plan_input(params)
    augmenting = training and augmentation.is_active(params.augment)
    # Each image's mean, the centre of its contrast changes, is computed as it is decoded (and cached with it).
    with_means = augmenting and augmentation.uses_image_means(params.augment)
    # A cache holds the files in their listed order, whatever the seed, and the seeded shuffle after
    # it does the shuffling: a disk cache written by a run with another seed then gives this seed's batches.
    cached = plan.cache_dir is not None
    images = decoded_images(file_patterns, params, shuffle_files=training and not cached, with_means=with_means,
                            record_buffer=plan.shuffle_buffer if training and not cached else 0)
    if cached:
        # An in-memory cache ("") belongs to this pipeline; a disk cache outlives the run.
        prefix = plan.cache_dir and disk_cache_prefix(
            plan.cache_dir, file_patterns, params.image_size, splits.TRAIN if training else splits.EVAL, with_means)
        images = images.cache(prefix)
        if training:
            images = images.shuffle(plan.shuffle_buffer, seed=params.seed, reshuffle_each_iteration=True)
    batches = images.batch(params.batch_size)

    def one_hot(labels):
        return tf.one_hot(label_ids(labels, tft_output), num_classes, dtype=tf.float32)

    def with_weights(batch_images, labels):
        if class_weights is None:
            return batch_images, labels
        return batch_images, labels, tf.linalg.matvec(labels, tf.constant(class_weights, tf.float32))

    if not augmenting:
        def model_inputs(batch_images, labels):
            return with_weights(tf.cast(batch_images, tf.float32), one_hot(labels))

        return parallel_map(batches, model_inputs).prefetch(_AUTOTUNE)

    # One seed per batch from a seeded stream (new each epoch): reproducible augmentation.
    seeds = tf.data.Dataset.random(seed=params.seed, rerandomize_each_iteration=True).batch(2)

    def augmented(batch, seed):
        # A batch is (images, labels), or (images, labels, means) when the colour map needs means.
        # Augmentation reads the uint8 pixels itself (fewer bytes to move) and returns float32.
        batch_images, labels, *means = batch
        return with_weights(*augmentation.augment_batch(batch_images, one_hot(labels), seed, params.augment, *means))

    batches = parallel_map(tf.data.Dataset.zip((batches, seeds)), augmented)
    return batches.prefetch(_AUTOTUNE)
