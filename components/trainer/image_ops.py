"""The one decode/resize function shared by training, evaluation and serving,
and the checks serving runs on bytes from the outside world."""

import tensorflow as tf

from components.trainer.params import DEFAULT_MAX_SERVING_PIXELS

_HEADER_BYTES = 32
_JPEG_MAGIC = b"\xff\xd8\xff"
# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its size by scaling in the DCT domain (an average over each
# block), for about that fraction of a full decode's work: a 12-megapixel photo need not be decoded whole
# to be shrunk to 224x224.
_JPEG_SCALES = (2, 4, 8)


def _is_jpeg(encoded: tf.Tensor) -> tf.Tensor:
    return tf.strings.substr(encoded, 0, len(_JPEG_MAGIC)) == _JPEG_MAGIC


def _decode(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """RGB uint8 ``[h, w, 3]``; a JPEG is decoded at the smallest of its full size, 1/2,
    1/4 or 1/8 that keeps both sides at least ``image_size``."""

    def jpeg():
        height_width = tf.image.extract_jpeg_shape(encoded)[:2]  # the frame header: nothing decoded yet
        # libjpeg rounds a scaled side up, so a side of at least image_size * scale stays at least image_size.
        scale_index = tf.reduce_sum(tf.cast(tf.reduce_min(height_width) >= image_size * tf.constant(_JPEG_SCALES),
                                            tf.int32))
        return tf.switch_case(scale_index, [
            lambda scale=scale: tf.io.decode_jpeg(encoded, channels=3, ratio=scale) for scale in (1,) + _JPEG_SCALES
        ])

    def other():
        return tf.io.decode_image(encoded, channels=3, expand_animations=False)

    return tf.cond(_is_jpeg(encoded), jpeg, other)


def decode_and_resize(encoded: tf.Tensor, image_size: int, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Decodes one JPEG/PNG/GIF/BMP string to RGB ``[size, size, 3]`` of ``dtype``
    (float32, or uint8 for the Trainer's cache: the same values).

    Values are whole numbers in [0, 255], so the Trainer can cache them as
    uint8 and training, evaluation and serving see exactly the same pixels.
    Grayscale is expanded and alpha dropped (``channels=3``); an animated GIF
    gives its first frame.  A large JPEG is decoded straight to a smaller
    size (see ``_JPEG_SCALES``) before it is resized.  Pixel normalisation for
    ResNet50 happens inside the model.
    """
    image = _decode(encoded, image_size)
    size = [image_size, image_size]
    height_width = tf.shape(image)[:2]

    def resized(**method):
        # Both filters average with non-negative weights: values stay within [0, 255], no clip needed.
        return tf.cast(tf.round(tf.image.resize(image, size, **method)), dtype)

    image = tf.case(
        [
            # Already the size: used as it is (a resize would change nothing and cost more than the decode).
            (tf.reduce_all(height_width == image_size), lambda: tf.cast(image, dtype)),
            # Shrinking both ways: area averaging, antialiased and about twice as fast as antialiased bilinear.
            (tf.reduce_all(height_width >= image_size), lambda: resized(method=tf.image.ResizeMethod.AREA)),
        ],
        # Otherwise bilinear, antialiased along a shrinking side.
        default=lambda: resized(antialias=True),
    )
    image.set_shape([image_size, image_size, 3])
    return image


def _little_endian(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    """The unsigned integer in ``head[start:start + size]``, least significant byte first."""
    return tf.reduce_sum(head[start:start + size] * tf.constant([256**i for i in range(size)], tf.int64))


def _big_endian(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    return tf.reduce_sum(head[start:start + size] * tf.constant([256**i for i in reversed(range(size))], tf.int64))


def header_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """Pixels an image's header claims (int64 scalar), -1 when it is no JPEG/PNG/GIF/BMP.

    Reads only the first bytes (JPEG: its frame header), so nothing is decoded.
    """
    padded = tf.strings.substr(tf.strings.join([encoded, tf.constant(b"\0" * _HEADER_BYTES)]), 0, _HEADER_BYTES)
    head = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)
    prefix = tf.strings.substr(encoded, 0, 4)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    def signed(value):  # BMP heights are negative for top-down rows
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    return tf.case(
        [
            (_is_jpeg(encoded), jpeg),
            (prefix == b"\x89PNG", lambda: _big_endian(head, 16, 4) * _big_endian(head, 20, 4)),
            (prefix == b"GIF8", lambda: _little_endian(head, 6, 2) * _little_endian(head, 8, 2)),
            (tf.strings.substr(prefix, 0, 2) == b"BM",
             lambda: signed(_little_endian(head, 18, 4)) * signed(_little_endian(head, 22, 4))),
        ],
        default=lambda: tf.constant(-1, tf.int64),
        exclusive=True,
    )


def checked_decode_and_resize(encoded: tf.Tensor, image_size: int, max_pixels: int) -> tf.Tensor:
    """``decode_and_resize`` for untrusted bytes: anything that is not an image of a
    sane size raises InvalidArgumentError saying so, before any decoding."""
    pixels = header_pixels(encoded)
    checks = [
        tf.debugging.assert_non_negative(
            pixels, message="Not a JPEG, PNG, GIF or BMP image (unrecognised leading bytes)"
        ),
        tf.debugging.assert_less_equal(
            pixels, tf.constant(max_pixels, tf.int64),
            message=f"Image has more than {max_pixels} pixels; refusing to decode it",
        ),
    ]
    with tf.control_dependencies(checks):
        return decode_and_resize(tf.identity(encoded), image_size)


def decode_batch(encoded: tf.Tensor, image_size: int, max_pixels: int = DEFAULT_MAX_SERVING_PIXELS) -> tf.Tensor:
    """Applies ``checked_decode_and_resize`` to a ``[batch]`` string tensor."""
    return tf.map_fn(
        lambda one: checked_decode_and_resize(one, image_size, max_pixels),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
