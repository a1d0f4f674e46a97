"""Encoded image files: what format they are, what their header says, and how
TensorFlow decodes them.

The one place that reads image bytes, for ingest (each example's format and
size), the image validator (its header checks, and the TensorFlow decode it runs
on every accepted file) and the Trainer (training, evaluation and the served
model decode and resize with the same function, so they see the same pixels):

* ``FORMATS``: each format named once, with the leading bytes that mark its
  files and the file extensions that claim it; ``signature_format`` and
  ``heif_brand`` read them.
* Headers in Python: ``read_header`` (Pillow's lazy parse, which decodes no
  pixels) and ``plain_jpeg`` (a plain JPEG's markers read directly, in a few
  microseconds).
* TensorFlow: ``decode`` (a JPEG at one of ``JPEG_SCALES``, chosen by
  ``decoder_index`` from a header read in Python or by ``decoder_of`` in a
  graph), ``decode_and_resize``, and for bytes from outside ``header_pixels``,
  ``checked_decode_and_resize`` and ``decode_batch``.

It reads no component's settings: callers pass their sizes and limits in.
"""

import dataclasses
import io
from typing import NamedTuple, Optional

import tensorflow as tf
from PIL import Image

from components import features

# Format names as Pillow gives them, in lower case: the examples' format feature and the validator's policy.
JPEG, PNG, GIF, BMP = "jpeg", "png", "gif", "bmp"
TIFF, ICO, WEBP, HEIF, AVIF = "tiff", "ico", "webp", "heif", "avif"


@dataclasses.dataclass(frozen=True)
class ImageFormat:
    """A format: the bytes its files start with, and the extensions that claim it."""

    name: str
    signatures: tuple[bytes, ...] = ()  # any of these leading bytes marks the format
    # A container format marks its files with a tag at an offset, and its brand at bytes 8 to 12.
    container: Optional[tuple[int, bytes]] = None
    brands: tuple[bytes, ...] = ()
    extensions: tuple[str, ...] = ()  # lower case, with the dot
    tensorflow: bool = False  # TensorFlow's decode_image reads it

    def matches(self, data: bytes) -> bool:
        if self.container is None:
            return data.startswith(self.signatures)  # False for no signatures
        offset, tag = self.container
        return data.startswith(tag, offset) and data[8:12] in self.brands


FORMATS = (
    ImageFormat(JPEG, (b"\xff\xd8\xff",), extensions=(".jpg", ".jpeg", ".jpe"), tensorflow=True),
    ImageFormat(PNG, (b"\x89PNG\r\n\x1a\n",), extensions=(".png",), tensorflow=True),
    ImageFormat(GIF, (b"GIF87a", b"GIF89a"), extensions=(".gif",), tensorflow=True),
    ImageFormat(BMP, (b"BM",), extensions=(".bmp",), tensorflow=True),
    ImageFormat(TIFF, (b"II*\x00", b"MM\x00*"), extensions=(".tif", ".tiff")),
    ImageFormat(ICO, (b"\x00\x00\x01\x00",)),
    ImageFormat(WEBP, container=(0, b"RIFF"), brands=(b"WEBP",), extensions=(".webp",)),
    ImageFormat(HEIF, container=(4, b"ftyp"),
                brands=(b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1")),
    # Named by its extension only: a file Pillow cannot read is reported as what it holds, not as an image.
    ImageFormat(AVIF, extensions=(".avif",)),
)
BY_NAME = {image_format.name: image_format for image_format in FORMATS}
# What TensorFlow decodes as it is, in the order its error messages name them.
TENSORFLOW_FORMATS = tuple(image_format.name for image_format in FORMATS if image_format.tensorflow)
# The format each known extension claims (the validator flags a file whose content says otherwise).
EXTENSIONS = {extension: image_format.name for image_format in FORMATS for extension in image_format.extensions}
_JPEG_SIGNATURES = BY_NAME[JPEG].signatures


def signature_format(data: bytes) -> Optional[str]:
    """The format whose signature ``data`` starts with, or None: the file claims to be that
    image, whether or not the rest of it can be read."""
    return next((image_format.name for image_format in FORMATS if image_format.matches(data)), None)


def heif_brand(data: bytes) -> Optional[str]:
    """The brand of a HEIF file (``heic``, ``mif1``, ...), or None for any other file."""
    return data[8:12].decode("ascii") if BY_NAME[HEIF].matches(data) else None


class Header(NamedTuple):
    """What an image's header says."""

    image_format: str
    height: int
    width: int
    channels: int  # bands stored in the file (a palette image has 1)


UNKNOWN_HEADER = Header(features.UNKNOWN_FORMAT, 0, 0, 0)


def read_header(data: bytes) -> Header:
    """The header of any image Pillow reads; ``UNKNOWN_HEADER`` when it cannot parse one.

    Pillow's ``open`` parses the header lazily and decodes no pixels.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            return Header((image.format or features.UNKNOWN_FORMAT).lower(), height, width, len(image.getbands()))
    except Exception:  # any parse failure means "not a readable image"
        return UNKNOWN_HEADER


# Start-of-frame markers of baseline, extended and progressive Huffman JPEGs.
_JPEG_FRAMES = (0xC0, 0xC1, 0xC2)
_JPEG_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}


def plain_jpeg(data: bytes) -> Optional[Header]:
    """The header of an 8-bit grey or colour JPEG that holds nothing more to act on (no EXIF
    orientation, no extra frames, no Adobe colour transform for CMYK), read from its markers
    up to the frame header; None for any other file, which Pillow then reads in full."""
    if not data.startswith(_JPEG_SIGNATURES):
        return None
    position, end = 2, len(data)
    while position + 4 <= end:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        length = int.from_bytes(data[position + 2:position + 4], "big")
        segment = data[position + 4:position + 2 + length]
        if length < 2 or len(segment) < length - 2:
            return None
        if (marker == 0xE1 and segment.startswith(b"Exif")) or (marker == 0xE2 and segment.startswith(b"MPF")) or (
                marker == 0xEE and segment.startswith(b"Adobe")):
            return None
        if marker in _JPEG_FRAMES:
            if len(segment) < 6 or segment[0] != 8 or segment[5] not in (1, 3):
                return None
            height, width = int.from_bytes(segment[1:3], "big"), int.from_bytes(segment[3:5], "big")
            return Header(JPEG, height, width, segment[5]) if height and width else None
        if (0xC3 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC)) or marker == 0xDA:
            return None  # another frame type, or a scan before any frame
        position += 2 + length
    return None


# libjpeg decodes a JPEG at 1/2, 1/4 or 1/8 of its size by scaling in the DCT domain (an average over each
# block), for about that fraction of a full decode's work, and reads and checks every entropy-coded block as
# a full decode does: a 12-megapixel photo need not be decoded whole to be shrunk to 224x224.
JPEG_SCALES = (1, 2, 4, 8)
ANY_FORMAT = len(JPEG_SCALES)  # the decoder index of decode_image: PNG, GIF, BMP


def decoder_index(data: bytes, height: int, width: int, min_side: int) -> int:
    """Which decoder ``decode`` runs on a file whose header says ``height`` x ``width``: for a
    JPEG, the index in ``JPEG_SCALES`` of the largest scale that keeps its short side at
    ``min_side`` or more (libjpeg rounds a scaled side up); ``ANY_FORMAT`` for the rest."""
    if not data.startswith(_JPEG_SIGNATURES):
        return ANY_FORMAT
    return sum(min(height, width) >= min_side * scale for scale in JPEG_SCALES[1:])


# header_pixels picks a format's parser by at most the first four bytes of its signatures; the decoder then
# checks the rest, and its error says what is wrong.
_SNIFFED_BYTES = 4


def _has_signature(encoded: tf.Tensor, image_format: str) -> tf.Tensor:
    prefixes = sorted({signature[:_SNIFFED_BYTES] for signature in BY_NAME[image_format].signatures})
    return tf.reduce_any([tf.strings.substr(encoded, 0, len(prefix)) == prefix for prefix in prefixes])


def decoder_of(encoded: tf.Tensor, min_side: int) -> tf.Tensor:
    """``decoder_index`` in a graph, the JPEG's size read from its frame header (nothing decoded)."""

    def jpeg():
        height_width = tf.image.extract_jpeg_shape(encoded)[:2]
        return tf.reduce_sum(tf.cast(tf.reduce_min(height_width) >= min_side * tf.constant(JPEG_SCALES[1:]),
                                     tf.int32))

    return tf.cond(_has_signature(encoded, JPEG), jpeg, lambda: tf.constant(ANY_FORMAT, tf.int32))


def decode(encoded: tf.Tensor, decoder: tf.Tensor) -> tf.Tensor:
    """RGB uint8 ``[h, w, 3]`` pixels by decoder ``decoder`` (``decoder_index``): a JPEG at
    ``JPEG_SCALES[decoder]``, anything else by ``decode_image``.  Grayscale is expanded,
    alpha dropped, and an animated GIF gives its first frame."""
    branches = [lambda scale=scale: tf.io.decode_jpeg(encoded, channels=3, ratio=scale) for scale in JPEG_SCALES]
    branches.append(lambda: tf.io.decode_image(encoded, channels=3, expand_animations=False))
    return tf.ensure_shape(tf.switch_case(decoder, branches), [None, None, 3])


def decode_and_resize(encoded: tf.Tensor, image_size: int, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """Decodes one JPEG/PNG/GIF/BMP string to RGB ``[size, size, 3]`` of ``dtype``
    (float32, or uint8 for the Trainer's cache: the same values).

    Values are whole numbers in [0, 255], so the Trainer can cache them as
    uint8 and training, evaluation and serving see exactly the same pixels.
    A large JPEG is decoded at the smallest of its full size, 1/2, 1/4 or 1/8
    that keeps both sides at least ``image_size`` before it is resized.  Pixel
    normalisation for ResNet50 happens inside the model.
    """
    image = decode(encoded, decoder_of(encoded, image_size))
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


_HEADER_BYTES = 32


def _little_endian(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    """The unsigned integer in ``head[start:start + size]``, least significant byte first."""
    return tf.reduce_sum(head[start:start + size] * tf.constant([256**i for i in range(size)], tf.int64))


def _big_endian(head: tf.Tensor, start: int, size: int) -> tf.Tensor:
    return tf.reduce_sum(head[start:start + size] * tf.constant([256**i for i in reversed(range(size))], tf.int64))


def header_pixels(encoded: tf.Tensor) -> tf.Tensor:
    """Pixels an image's header claims (int64 scalar), -1 when it is none of ``TENSORFLOW_FORMATS``.

    Reads only the first bytes (JPEG: its frame header), so nothing is decoded.
    """
    padded = tf.strings.substr(tf.strings.join([encoded, tf.constant(b"\0" * _HEADER_BYTES)]), 0, _HEADER_BYTES)
    head = tf.cast(tf.io.decode_raw(padded, tf.uint8), tf.int64)

    def jpeg():
        shape = tf.image.extract_jpeg_shape(encoded)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    def signed(value):  # BMP heights are negative for top-down rows
        return tf.abs(tf.where(value >= 2**31, value - 2**32, value))

    pixels = {
        JPEG: jpeg,
        PNG: lambda: _big_endian(head, 16, 4) * _big_endian(head, 20, 4),
        GIF: lambda: _little_endian(head, 6, 2) * _little_endian(head, 8, 2),
        BMP: lambda: signed(_little_endian(head, 18, 4)) * signed(_little_endian(head, 22, 4)),
    }
    return tf.case(
        [(_has_signature(encoded, image_format), pixels[image_format]) for image_format in TENSORFLOW_FORMATS],
        default=lambda: tf.constant(-1, tf.int64),
        exclusive=True,
    )


_UPPER_NAMES = [name.upper() for name in TENSORFLOW_FORMATS]
_TENSORFLOW_NAMES = f"{', '.join(_UPPER_NAMES[:-1])} or {_UPPER_NAMES[-1]}"  # JPEG, PNG, GIF or BMP


def checked_decode_and_resize(encoded: tf.Tensor, image_size: int, max_pixels: int) -> tf.Tensor:
    """``decode_and_resize`` for untrusted bytes: anything that is not an image of a
    sane size raises InvalidArgumentError saying so, before any decoding."""
    pixels = header_pixels(encoded)
    checks = [
        tf.debugging.assert_non_negative(
            pixels, message=f"Not a {_TENSORFLOW_NAMES} image (unrecognised leading bytes)"
        ),
        tf.debugging.assert_less_equal(
            pixels, tf.constant(max_pixels, tf.int64),
            message=f"Image has more than {max_pixels} pixels; refusing to decode it",
        ),
    ]
    with tf.control_dependencies(checks):
        return decode_and_resize(tf.identity(encoded), image_size)


def decode_batch(encoded: tf.Tensor, image_size: int, max_pixels: int) -> tf.Tensor:
    """Applies ``checked_decode_and_resize`` to a ``[batch]`` string tensor."""
    return tf.map_fn(
        lambda one: checked_decode_and_resize(one, image_size, max_pixels),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
