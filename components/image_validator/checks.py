"""Per-file checks: what one file is, and whether it may be trained on.

``inspect_images`` reads each header first (format, size, mode, frames, EXIF)
and rejects on it before decoding anything, so a decompression bomb is never
decoded.  A plain JPEG (8-bit grey or colour, no EXIF, no extra frames, no
Adobe colour transform: most files) has its few header fields read from its
markers; anything else is read by Pillow (both in ``components/image_bytes.py``,
which ingest, training and serving use too).  Files whose header passes are then
decoded by TensorFlow's own decoders, which training and serving use, many
files to one call (``decoding.py``; a large JPEG at a reduced scale, which
reads the same data), so a file that passes here decodes there.  Files
TensorFlow would misread are converted: CMYK JPEGs to RGB, EXIF-rotated JPEGs
to upright pixels (re-encoded at quality 95).
Formats Pillow reads but TensorFlow does not (WebP, TIFF, ...), and files of a
format TensorFlow claims that its decoder still fails on while Pillow reads
them (a 16-bit BMP), and palette BMPs, which TensorFlow misreads, are
converted to PNG, which loses nothing.

The decoded pixels give the perceptual hashes near-duplicate detection uses.
A rejected file is described by what it was detected as, its size and its
hash: a report never quotes a file's content.
"""

import dataclasses
import hashlib
import io
import posixpath
import warnings
from collections.abc import Sequence
from typing import Optional, Union

import tensorflow as tf
from PIL import Image, ImageOps

from components import features, image_bytes
from components.image_validator import decoding, near_duplicates
from components.image_validator.policy import ValidationPolicy

# Rejections: the file is not trained on.
UNREADABLE = "unreadable"
LINK_OUTSIDE_DATA = "link_outside_data"
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
# Near-duplicates: rejections or flags, as the policy says.
NEAR_DUPLICATE_LEAKAGE = "near_duplicate_leakage"
NEAR_DUPLICATE_LABEL_CONFLICT = "near_duplicate_label_conflict"
NEAR_DUPLICATE_IN_CLASS = "near_duplicate_in_class"

# Flags: the file is trained on, and the report says what was noticed or done.
GRAYSCALE = "grayscale"
ALPHA_DROPPED = "alpha_dropped"
PALETTE = "palette"
HIGH_BIT_DEPTH = "high_bit_depth"
ANIMATED_FIRST_FRAME = "animated_first_frame"
CONVERTED_CMYK = "converted_cmyk"
EXIF_ROTATED = "exif_rotated"
EXTENSION_MISMATCH = "extension_mismatch"
CONVERTED_TO_PNG = "converted_to_png"

# Content that is not an image, told apart by its first bytes (only ever named, never quoted).
_KINDS = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"), (b"\x1f\x8b", "gzip data"),
          (b"\x7fELF", "an executable"), (b"-----BEGIN", "a PEM key or certificate"), (b"\xef\xbb\xbf", "text"))
_EXIF_ORIENTATION = 0x0112


@dataclasses.dataclass(frozen=True)
class Inspection:
    """The verdict on one file: ``reason`` is None when it is accepted."""

    reason: Optional[str]
    detail: str = ""
    flags: tuple[str, ...] = ()
    # The bytes to train on: the file's own, or its conversion.
    data: bytes = b""
    image_format: str = ""
    height: int = 0
    width: int = 0
    channels: int = 0
    # near_duplicates.perceptual_hashes of the pixels, for accepted files.
    hashes: bytes = b""


def _mode_flags(image: Image.Image) -> tuple[str, ...]:
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


def _encode_png(image: Image.Image) -> bytes:
    if image.mode not in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # converted once, read every epoch: favour speed
    return buffer.getvalue()


def describe(data: bytes) -> str:
    """What a file that is not a usable image holds, its size and hash: never its bytes."""
    kind = "unrecognised binary data"
    for magic, name in _KINDS:
        if data.startswith(magic):
            kind = name
            break
    else:
        head = data[:512].lstrip()
        if head[:1] == b"<":
            kind = "HTML or XML markup"
        else:
            try:
                data[:4096].decode("utf-8")
                kind = "text"
            except UnicodeDecodeError:
                pass
    return f"detected as {kind}; {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:16]}"


def _tensorflow_decode(data: bytes, decoder: int):
    """RGB uint8 pixels as the batch decodes them, or the decoder's one-line error."""
    try:
        return image_bytes.decode(tf.constant(data), tf.constant(decoder)).numpy(), ""
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
        return None, str(error).split("\n")[0].split("}}")[-1].split(" [Op:")[0].strip()


def _pillow_png(data: bytes) -> Optional[bytes]:
    """The file decoded by Pillow and encoded as PNG, or None when Pillow cannot decode it either."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return _encode_png(image)
    except Exception:  # Pillow raises many types for broken pixels
        return None


@dataclasses.dataclass(frozen=True)
class _Decodable:
    """A file whose header passed: what remains is the full decode."""

    data: bytes
    image_format: str
    height: int
    width: int
    channels: int
    flags: tuple[str, ...]
    detail: str


Checked = Union[Inspection, _Decodable]  # a rejection, or what remains to decode


def check_headers(files: Sequence[tuple[bytes, str, str]], policy: ValidationPolicy) -> list[Checked]:
    """The first half of ``inspect_images``: what each file's header says (in Python,
    under the GIL), a rejection or what remains to decode."""
    return [_check_header(data, path, policy, error) for data, path, error in files]


def decode_checked(checked: Sequence[Checked], policy: ValidationPolicy) -> list[Inspection]:
    """The second half: the files whose header passed, decoded together (in TensorFlow,
    which releases the GIL, so it overlaps the next batch's ``check_headers``)."""
    results = list(checked)
    decodable = [index for index, result in enumerate(results) if isinstance(result, _Decodable)]
    for index, inspection in zip(decodable, _decode_all([results[i] for i in decodable], policy)):
        results[index] = inspection
    return results


def inspect_images(files: Sequence[tuple[bytes, str, str]], policy: ValidationPolicy) -> list[Inspection]:
    """Checks each ``(data, relative_path, ingest_error)`` against ``policy`` (see the
    module docstring)."""
    return decode_checked(check_headers(files, policy), policy)


def inspect_image(data: bytes, relative_path: str, policy: ValidationPolicy, ingest_error: str = "") -> Inspection:
    """Checks one file against ``policy``."""
    return inspect_images([(data, relative_path, ingest_error)], policy)[0]


def _decoder_index(file: _Decodable) -> int:
    return image_bytes.decoder_index(file.data, file.height, file.width, decoding.MIN_DECODED_SIDE)


def _decode_all(files: list[_Decodable], policy: ValidationPolicy) -> list[Inspection]:
    """Decodes (and hashes) the files in one batch; when one fails, halves the batch
    until it stands alone."""
    try:
        signatures = decoding.decode_batch(
            [f.data for f in files], [_decoder_index(f) for f in files], policy.near_duplicates)
    except tf.errors.OpError:
        if len(files) == 1:
            return [_decode_alone(files[0], policy)]
        half = len(files) // 2
        return _decode_all(files[:half], policy) + _decode_all(files[half:], policy)
    return [Inspection(None, f.detail, f.flags, f.data, f.image_format, f.height, f.width, f.channels, signature)
            for f, signature in zip(files, signatures)]


def _decode_alone(file: _Decodable, policy: ValidationPolicy) -> Inspection:
    """One file that failed in a batch: the decoder's error, or a PNG of it that Pillow
    reads and TensorFlow decodes (a format TensorFlow claims but cannot read in this
    file, such as a 16-bit BMP)."""
    data, image_format, flags, detail = file.data, file.image_format, list(file.flags), file.detail
    pixels, error = _tensorflow_decode(data, _decoder_index(file))
    if pixels is None and image_format != image_bytes.PNG:
        png = _pillow_png(data)
        if png is not None:
            pixels, _ = _tensorflow_decode(png, image_bytes.ANY_FORMAT)
            if pixels is not None:
                flags.append(CONVERTED_TO_PNG)
                detail = f"converted from {image_format} (TensorFlow's decoder failed: {error})"
                data, image_format = png, image_bytes.PNG
    if pixels is None:
        return Inspection(CORRUPT_IMAGE, f"decode failed: {error}")
    hashes = near_duplicates.perceptual_hashes(pixels) if policy.near_duplicates else b""
    return Inspection(None, detail, tuple(flags), data, image_format, file.height, file.width, file.channels, hashes)


def _geometry_rejection(width: int, height: int, policy: ValidationPolicy) -> Optional[Inspection]:
    if width * height > policy.max_pixels:
        return Inspection(DECOMPRESSION_BOMB, f"{width}x{height} = {width * height} pixels > {policy.max_pixels}")
    if width < policy.min_width or height < policy.min_height:
        return Inspection(IMAGE_TOO_SMALL, f"{width}x{height} below {policy.min_width}x{policy.min_height}")
    if width > policy.max_width or height > policy.max_height:
        return Inspection(IMAGE_TOO_LARGE, f"{width}x{height} above {policy.max_width}x{policy.max_height}")
    ratio = max(width, height) / min(width, height)
    if ratio > policy.max_aspect_ratio:
        return Inspection(EXTREME_ASPECT_RATIO, f"{width}x{height}, ratio {ratio:.1f} > {policy.max_aspect_ratio}")
    return None


def _extension_flags(relative_path: str, image_format: str) -> list[str]:
    extension = posixpath.splitext(relative_path)[1].lower()
    return [EXTENSION_MISMATCH] if image_bytes.EXTENSIONS.get(extension, image_format) != image_format else []


def _check_header(data: bytes, relative_path: str, policy: ValidationPolicy,
                  ingest_error: str) -> Checked:
    """A rejection from what the file's header says, or what the decode needs."""
    if ingest_error == features.OUTSIDE_LINK_ERROR:
        return Inspection(LINK_OUTSIDE_DATA, ingest_error)
    if ingest_error:
        return Inspection(UNREADABLE, ingest_error)
    if not data:
        return Inspection(EMPTY_FILE, "0 bytes")
    if len(data) < policy.min_file_bytes:
        return Inspection(FILE_TOO_SMALL, f"{len(data)} bytes < {policy.min_file_bytes}")
    if len(data) > policy.max_file_bytes:
        return Inspection(FILE_TOO_LARGE, f"{len(data)} bytes > {policy.max_file_bytes}")

    plain = image_bytes.plain_jpeg(data) if image_bytes.JPEG in policy.allowed_formats else None
    if plain is not None:  # the common case, without Pillow's slower parse of the whole header
        image_format, height, width, channels = plain
        rejection = _geometry_rejection(width, height, policy)
        if rejection:
            return rejection
        flags = ((GRAYSCALE,) if channels == 1 else ()) + tuple(_extension_flags(relative_path, image_format))
        return _Decodable(data, image_format, height, width, channels, flags, "")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as error:
        return Inspection(DECOMPRESSION_BOMB, str(error))
    except Exception as error:  # Pillow raises many types for bad headers
        brand = image_bytes.heif_brand(data)
        if brand:
            return Inspection(FORMAT_NOT_ALLOWED, f"HEIF image ({brand}): no decoder for it here; {describe(data)}")
        if image_bytes.signature_format(data):
            return Inspection(CORRUPT_IMAGE, f"image signature but unreadable header ({type(error).__name__})")
        return Inspection(NOT_AN_IMAGE, describe(data))

    with image:
        image_format = (image.format or "").lower()
        if image_format == "mpo":  # a camera JPEG carrying extra frames: TensorFlow reads its first as a JPEG
            image_format = image_bytes.JPEG
        width, height = image.size
        convert_format = image_format not in policy.allowed_formats
        if convert_format and image_format not in policy.convert_formats:
            accepted = list(policy.allowed_formats) + list(policy.convert_formats)
            return Inspection(FORMAT_NOT_ALLOWED, f"{image_format or 'unknown'} not in {accepted}")
        rejection = _geometry_rejection(width, height, policy)
        if rejection:
            return rejection

        flags = list(_mode_flags(image)) + _extension_flags(relative_path, image_format)
        if getattr(image, "n_frames", 1) > 1 and image.format != "MPO":
            if not policy.accept_animated:
                return Inspection(ANIMATED, f"{image.n_frames} frames")
            flags.append(ANIMATED_FIRST_FRAME)

        converted = None
        detail = ""
        # TensorFlow's BMP decoder reads a palette BMP's indices as grey levels, without a word.
        palette_bmp = image_format == image_bytes.BMP and image.mode in ("P", "PA", "1")
        to_png = convert_format or palette_bmp
        try:
            if image.mode == "CMYK":
                if not policy.convert_cmyk:
                    return Inspection(UNSUPPORTED_COLOR_MODE, "CMYK")
                converted = image.convert("RGB")
                flags.append(CONVERTED_CMYK)
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1) if image_format == image_bytes.JPEG else 1
            if policy.apply_exif_orientation and orientation not in (0, 1):
                converted = ImageOps.exif_transpose(converted or image)
                flags.append(EXIF_ROTATED)
            if to_png:
                image.seek(0)
                data = _encode_png(converted or image)
                flags.append(CONVERTED_TO_PNG)
                detail = (f"converted from {image_format} (TensorFlow does not decode it)" if convert_format
                          else "converted from a palette BMP (TensorFlow ignores BMP palettes)")
                image_format = image_bytes.PNG
            elif converted is not None:
                data = _reencode_jpeg(converted)
                image_format = image_bytes.JPEG
            if converted is not None:
                width, height = converted.size
        except Exception as error:  # a conversion that fails means broken pixels
            return Inspection(CORRUPT_IMAGE, f"cannot convert: {type(error).__name__}")
        channels = len(image.getbands()) if converted is None else 3

    return _Decodable(data, image_format, height, width, channels, tuple(flags), detail)
