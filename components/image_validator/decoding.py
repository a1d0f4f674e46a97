"""TensorFlow's decode of many accepted files at once, with their perceptual hashes.

One call per batch rather than one eager op per file: the files are decoded in
parallel on TensorFlow's threads (the decoders release the GIL), and each is
area-averaged to the hash's input and hashed in the same graph.  When any file
in a batch fails to decode, the whole call fails; ``checks`` then halves the
batch until the broken file stands alone and is inspected on its own.

Files are decoded by ``image_bytes.decode``, as training and serving decode
them; a JPEG at the largest libjpeg scale (1/2, 1/4, 1/8) that keeps its short
side at ``MIN_DECODED_SIDE`` (``image_bytes.decoder_index``): a scaled decode
reads and checks every entropy-coded block as a full one does (training decodes
large JPEGs scaled too), for less work.
"""

from collections.abc import Sequence

import tensorflow as tf

from components import image_bytes
from components.image_validator import near_duplicates

MIN_DECODED_SIDE = 64  # the hash needs no more
_PARALLEL = 16
_BATCH = (tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int32))


@tf.function(input_signature=_BATCH)
def _decode_and_hash(datas, decoders):
    small = tf.map_fn(lambda item: near_duplicates.hash_input(image_bytes.decode(*item)), (datas, decoders),
                      fn_output_signature=tf.TensorSpec([near_duplicates.INPUT_SIDE] * 2 + [3], tf.float32),
                      parallel_iterations=_PARALLEL)
    return near_duplicates.coefficients(small)


@tf.function(input_signature=_BATCH)
def _decode_only(datas, decoders):
    return tf.map_fn(lambda item: tf.size(image_bytes.decode(*item)), (datas, decoders),
                     fn_output_signature=tf.TensorSpec([], tf.int32), parallel_iterations=_PARALLEL)


def decode_batch(datas: Sequence[bytes], decoders: Sequence[int], hashes: bool) -> list[bytes]:
    """Decodes every file by its ``image_bytes.decoder_index``; returns their
    ``near_duplicates`` signatures (empty ones when ``hashes`` is False).
    Raises ``tf.errors.OpError`` when any file fails."""
    if not datas:
        return []
    batch = (tf.constant(list(datas), tf.string), tf.constant(list(decoders), tf.int32))
    if not hashes:
        _decode_only(*batch)
        return [b""] * len(datas)
    values, colours = _decode_and_hash(*batch)
    return near_duplicates.signatures(values.numpy(), colours.numpy())
