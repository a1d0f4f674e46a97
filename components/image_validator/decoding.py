"""TensorFlow's decode of many accepted files at once, with their perceptual hashes.

One call per batch rather than one eager op per file: the files are decoded in
parallel on TensorFlow's threads (the decoders release the GIL), and each is
area-averaged to the hash's input and hashed in the same graph.  When any file
in a batch fails to decode, the whole call fails; ``checks`` then halves the
batch until the broken file stands alone and is inspected on its own.

A JPEG is decoded at the largest libjpeg scale (1/2, 1/4, 1/8) that keeps its
short side at ``MIN_DECODED_SIDE``: a scaled decode reads and checks every
entropy-coded block as a full one does (training decodes large JPEGs scaled
too), for less work.
"""

from collections.abc import Sequence

import tensorflow as tf

from components.image_validator import near_duplicates

JPEG_SCALES = (1, 2, 4, 8)
ANY_FORMAT = len(JPEG_SCALES)  # the decoder index of decode_image: PNG, GIF, BMP
MIN_DECODED_SIDE = 64  # the hash needs no more
_PARALLEL = 16


def decoder_index(data: bytes, height: int, width: int) -> int:
    """Which of the batch's decoders reads this file (see the module docstring)."""
    if not data.startswith(b"\xff\xd8"):
        return ANY_FORMAT
    return next((index for index in range(len(JPEG_SCALES) - 1, 0, -1)
                 if min(height, width) >= MIN_DECODED_SIDE * JPEG_SCALES[index]), 0)


def decode(data: tf.Tensor, decoder: tf.Tensor) -> tf.Tensor:
    """RGB uint8 pixels, as training decodes them (at a reduced scale for a large JPEG)."""
    branches = [lambda scale=scale: tf.io.decode_jpeg(data, channels=3, ratio=scale) for scale in JPEG_SCALES]
    branches.append(lambda: tf.io.decode_image(data, channels=3, expand_animations=False))
    return tf.ensure_shape(tf.switch_case(decoder, branches), [None, None, 3])


_BATCH = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32))


@tf.function(input_signature=_BATCH)
def _decode_and_hash(datas, decoders):
    small = tf.map_fn(lambda item: near_duplicates.hash_input(decode(*item)), (datas, decoders),
                      fn_output_signature=tf.TensorSpec([near_duplicates.INPUT_SIDE] * 2 + [3], tf.float32),
                      parallel_iterations=_PARALLEL)
    return near_duplicates.coefficients(small)


@tf.function(input_signature=_BATCH)
def _decode_only(datas, decoders):
    return tf.map_fn(lambda item: tf.size(decode(*item)), (datas, decoders),
                     fn_output_signature=tf.TensorSpec([], tf.int32), parallel_iterations=_PARALLEL)


def decode_batch(datas: Sequence[bytes], decoders: Sequence[int], hashes: bool) -> list[bytes]:
    """Decodes every file; returns their ``near_duplicates`` signatures (empty ones
    when ``hashes`` is False).  Raises ``tf.errors.OpError`` when any file fails."""
    if not datas:
        return []
    batch = (tf.constant(list(datas), tf.string), tf.constant(list(decoders), tf.int32))
    if not hashes:
        _decode_only(*batch)
        return [b""] * len(datas)
    values, colours = _decode_and_hash(*batch)
    return near_duplicates.signatures(values.numpy(), colours.numpy())
