"""A generated folder of broken and odd image files, with what the validator must say of each."""

import io
import os
import pathlib
import struct
import zlib
from typing import Dict, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image

from components.image_validator import checks


class Expected(NamedTuple):
    reason: Optional[str]  # None: accepted
    flags: Tuple[str, ...] = ()


def _image(size=(48, 40), seed=0, mode="RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    return image if mode == "RGB" else image.convert(mode)


def _encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def declared_size_png(width: int, height: int) -> bytes:
    """A valid PNG header declaring ``width`` x ``height``, with almost no pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def make_bad_corpus(root: pathlib.Path) -> Dict[str, Expected]:
    """Writes the corpus under ``root`` (classes ``cats``, ``dogs``, empty ``birds``).

    Returns the expected verdict for every file the listing ingests, keyed by its
    path relative to ``root``.  Hidden files, the empty folder and the link loop
    are not in it: they are listed, not ingested.
    """
    expected: Dict[str, Expected] = {}

    def put(relative: str, data: bytes, verdict: Expected) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        expected[relative] = verdict

    # Good images, so the classes have something to train on.
    for number in range(6):
        put(f"cats/good_{number}.jpg", _encode(_image(seed=number), "JPEG"), Expected(None))
        put(f"dogs/good_{number}.png", _encode(_image(seed=100 + number), "PNG"), Expected(None))

    jpeg = _encode(_image(seed=7), "JPEG")
    put("cats/empty.jpg", b"", Expected(checks.EMPTY_FILE))
    put("cats/truncated.jpg", jpeg[: len(jpeg) // 2], Expected(checks.CORRUPT_IMAGE))
    put("cats/corrupt_header.jpg", b"\xff\xd8\xff\xe0" + bytes(300), Expected(checks.CORRUPT_IMAGE))
    put("cats/notes.jpg", b"these are my notes about the cat photos, not a photo\n" * 3, Expected(checks.NOT_AN_IMAGE))
    put("dogs/error_page.jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>" * 2,
        Expected(checks.NOT_AN_IMAGE))
    frames = [_image(seed=s) for s in (20, 21, 22)]
    put("cats/animated.gif", _encode(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        Expected(None, (checks.PALETTE, checks.ANIMATED_FIRST_FRAME)))
    put("cats/cmyk.jpg", _encode(_image(seed=23, mode="CMYK"), "JPEG"), Expected(None, (checks.CONVERTED_CMYK,)))
    sixteen = Image.fromarray(np.random.default_rng(24).integers(0, 65535, (40, 48)).astype(np.uint16))
    put("dogs/sixteen_bit.png", _encode(sixteen, "PNG"), Expected(None, (checks.GRAYSCALE, checks.HIGH_BIT_DEPTH)))
    put("dogs/grayscale.jpg", _encode(_image(seed=25, mode="L"), "JPEG"), Expected(None, (checks.GRAYSCALE,)))
    put("dogs/rgba.png", _encode(_image(seed=26, mode="RGBA"), "PNG"), Expected(None, (checks.ALPHA_DROPPED,)))
    put("dogs/palette.png", _encode(_image(seed=27).convert("P"), "PNG"), Expected(None, (checks.PALETTE,)))
    put("cats/tracking_pixel.gif", _encode(_image(size=(1, 1), seed=28), "GIF"), Expected(checks.IMAGE_TOO_SMALL))
    put("dogs/bomb.png", declared_size_png(60000, 60000), Expected(checks.DECOMPRESSION_BOMB))
    put("dogs/large_declared.png", declared_size_png(8000, 8000), Expected(checks.DECOMPRESSION_BOMB))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to view"
    put("cats/rotated.jpg", _encode(_image(size=(64, 40), seed=29), "JPEG", exif=exif),
        Expected(None, (checks.EXIF_ROTATED,)))
    put("cats/café photo ü.jpg", _encode(_image(seed=30), "JPEG"), Expected(None))
    conflict = _encode(_image(seed=31), "JPEG")
    put("cats/same_photo.jpg", conflict, Expected(checks.LABEL_CONFLICT))
    put("dogs/same_photo.jpg", conflict, Expected(checks.LABEL_CONFLICT))
    copy = _encode(_image(seed=32), "PNG")
    put("dogs/copy_a.png", copy, Expected(None))
    put("dogs/copy_b.png", copy, Expected(checks.DUPLICATE_IN_CLASS))
    put("cats/UPPER.JPG", _encode(_image(seed=33), "JPEG"), Expected(None))
    put("cats/2019/nested.jpg", _encode(_image(seed=34), "JPEG"), Expected(None))
    put("dogs/really_a_png.jpg", _encode(_image(seed=35), "PNG"), Expected(None, (checks.EXTENSION_MISMATCH,)))
    put("dogs/photo.webp", _encode(_image(seed=36), "WEBP"), Expected(checks.FORMAT_NOT_ALLOWED))
    put("dogs/banner.png", _encode(_image(size=(400, 20), seed=37), "PNG"), Expected(checks.EXTREME_ASPECT_RATIO))
    put("readme.txt", b"cats and dogs", Expected(checks.OUTSIDE_CLASS_FOLDER))

    # Links: to a file outside the data, dangling, and a loop back to the root.
    outside = root.parent / f"{root.name}_outside"
    outside.mkdir(exist_ok=True)
    (outside / "linked.jpg").write_bytes(_encode(_image(seed=38), "JPEG"))
    os.symlink(outside / "linked.jpg", root / "cats" / "linked.jpg")
    expected["cats/linked.jpg"] = Expected(None)
    os.symlink(root / "cats" / "gone.jpg", root / "dogs" / "dangling.jpg")
    expected["dogs/dangling.jpg"] = Expected(checks.UNREADABLE)
    os.symlink(root, root / "cats" / "loop")

    # Listed, not ingested.
    (root / "cats" / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (root / "dogs" / "._good_0.png").write_bytes(b"\x00\x05\x16\x07")
    (root / "birds").mkdir()
    return expected


HIDDEN = ["cats/.DS_Store", "dogs/._good_0.png"]
EMPTY_CLASS_FOLDERS = ["birds"]
REPEATED_FOLDERS = ["cats/loop"]
