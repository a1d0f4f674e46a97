"""Per-file checks: what one file is, and whether it may be trained on.

``inspect_image`` reads the header first (format, size, mode, frames, EXIF)
and rejects on it before decoding anything, so a decompression bomb is never
decoded.  Accepted files are then decoded in full by TensorFlow's own
``decode_image``, whose decoders training and serving use (they may decode a
large JPEG at a reduced scale, which reads the same data), so a file that
passes here decodes there.  Files TensorFlow would misread are converted: CMYK
JPEGs to RGB, EXIF-rotated JPEGs to upright pixels (re-encoded at quality 95).
"""

import dataclasses
import io
import posixpath
import warnings
from typing import Optional, Tuple

import tensorflow as tf
from PIL import Image, ImageOps

from components.image_validator.policy import ValidationPolicy

# Rejections: the file is not trained on.
UNREADABLE = "unreadable"
EMPTY_FILE = "empty_file"
FILE_TOO_SMALL = "file_too_small"
FILE_TOO_LARGE = "file_too_large"
NOT_AN_IMAGE = "not_an_image"
CORRUPT_IMAGE = "corrupt_image"
FORMAT_NOT_ALLOWED = "format_not_allowed"
DECOMPRESSION_BOMB = "decompression_bomb"
IMAGE_TOO_SMALL = "image_too_small"
IMAGE_TOO_LARGE = "image_too_large"
EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
UNSUPPORTED_COLOR_MODE = "unsupported_color_mode"
ANIMATED = "animated"
LABEL_NOT_IN_SCHEMA = "label_not_in_schema"
DUPLICATE_IN_CLASS = "duplicate_in_class"
LABEL_CONFLICT = "label_conflict"
SPLIT_LEAKAGE = "split_leakage"
OUTSIDE_CLASS_FOLDER = "outside_class_folder"

# Flags: the file is trained on, and the report says what was noticed or done.
GRAYSCALE = "grayscale"
ALPHA_DROPPED = "alpha_dropped"
PALETTE = "palette"
HIGH_BIT_DEPTH = "high_bit_depth"
ANIMATED_FIRST_FRAME = "animated_first_frame"
CONVERTED_CMYK = "converted_cmyk"
EXIF_ROTATED = "exif_rotated"
EXTENSION_MISMATCH = "extension_mismatch"

_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"\x00\x00\x01\x00")
_EXTENSIONS = {".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".gif": "gif", ".bmp": "bmp",
               ".webp": "webp", ".tif": "tiff", ".tiff": "tiff"}
_EXIF_ORIENTATION = 0x0112


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The verdict on one file: ``reason`` is None when it is accepted."""

    reason: Optional[str]
    detail: str = ""
    flags: Tuple[str, ...] = ()
    # The bytes to train on: the file's own, or its conversion.
    data: bytes = b""
    image_format: str = ""
    height: int = 0
    width: int = 0
    channels: int = 0


def _looks_like_an_image(data: bytes) -> bool:
    return data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")


def _mode_flags(image: Image.Image) -> Tuple[str, ...]:
    flags = []
    if image.mode in ("L", "LA", "1", "I", "I;16", "I;16B", "I;16L", "F"):
        flags.append(GRAYSCALE)
    if image.mode.startswith("I") or image.mode == "F" or image.mode in ("RGB;16", "RGBA;16"):
        flags.append(HIGH_BIT_DEPTH)
    if image.mode == "P":
        flags.append(PALETTE)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        flags.append(ALPHA_DROPPED)
    return tuple(flags)


def _reencode_jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def inspect_image(data: bytes, relative_path: str, policy: ValidationPolicy, ingest_error: str = "") -> Inspection:
    """Checks one file against ``policy`` (see the module docstring)."""
    if ingest_error:
        return Inspection(UNREADABLE, ingest_error)
    if not data:
        return Inspection(EMPTY_FILE, "0 bytes")
    if len(data) < policy.min_file_bytes:
        return Inspection(FILE_TOO_SMALL, f"{len(data)} bytes < {policy.min_file_bytes}")
    if len(data) > policy.max_file_bytes:
        return Inspection(FILE_TOO_LARGE, f"{len(data)} bytes > {policy.max_file_bytes}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        return Inspection(DECOMPRESSION_BOMB, str(error))
    except Exception as error:  # noqa: BLE001 - Pillow raises many types for bad headers
        if _looks_like_an_image(data):
            return Inspection(CORRUPT_IMAGE, f"image signature but unreadable header ({type(error).__name__})")
        return Inspection(NOT_AN_IMAGE, f"starts with {data[:16]!r}")

    with image:
        image_format = (image.format or "").lower()
        width, height = image.size
        if image_format not in policy.allowed_formats:
            return Inspection(FORMAT_NOT_ALLOWED, f"{image_format or 'unknown'} not in {list(policy.allowed_formats)}")
        if width * height > policy.max_pixels:
            return Inspection(DECOMPRESSION_BOMB, f"{width}x{height} = {width * height} pixels > {policy.max_pixels}")
        if width < policy.min_width or height < policy.min_height:
            return Inspection(IMAGE_TOO_SMALL, f"{width}x{height} below {policy.min_width}x{policy.min_height}")
        if width > policy.max_width or height > policy.max_height:
            return Inspection(IMAGE_TOO_LARGE, f"{width}x{height} above {policy.max_width}x{policy.max_height}")
        ratio = max(width, height) / min(width, height)
        if ratio > policy.max_aspect_ratio:
            return Inspection(EXTREME_ASPECT_RATIO, f"{width}x{height}, ratio {ratio:.1f} > {policy.max_aspect_ratio}")

        flags = list(_mode_flags(image))
        extension = posixpath.splitext(relative_path)[1].lower()
        if extension in _EXTENSIONS and _EXTENSIONS[extension] != image_format:
            flags.append(EXTENSION_MISMATCH)
        if getattr(image, "n_frames", 1) > 1:
            if not policy.accept_animated:
                return Inspection(ANIMATED, f"{image.n_frames} frames")
            flags.append(ANIMATED_FIRST_FRAME)

        converted = None
        try:
            if image.mode == "CMYK":
                if not policy.convert_cmyk:
                    return Inspection(UNSUPPORTED_COLOR_MODE, "CMYK")
                converted = image.convert("RGB")
                flags.append(CONVERTED_CMYK)
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1) if image_format == "jpeg" else 1
            if policy.apply_exif_orientation and orientation not in (0, 1):
                converted = ImageOps.exif_transpose(converted or image)
                flags.append(EXIF_ROTATED)
            if converted is not None:
                data = _reencode_jpeg(converted)
                width, height = converted.size
                image_format = "jpeg"
        except Exception as error:  # noqa: BLE001 - a conversion that fails means broken pixels
            return Inspection(CORRUPT_IMAGE, f"cannot convert: {error}")
        channels = len(image.getbands()) if converted is None else 3

    # The full decode, by the decoder training and serving use.
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        message = str(error).split("\n")[0].split("}}")[-1].split(" [Op:")[0].strip()
        return Inspection(CORRUPT_IMAGE, f"decode failed: {message}")
    return Inspection(None, "", tuple(flags), data, image_format, height, width, channels)
