"""A generated folder of broken and odd image files, with what the validator must say of each."""

import io
import os
import pathlib
import struct
import zlib
from typing import NamedTuple, Optional

import numpy as np
from PIL import Image

from components import names
from components.image_validator import checks


class Expected(NamedTuple):
    reason: Optional[str]  # None: accepted
    flags: tuple[str, ...] = ()


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


def rgb555_bmp(width: int, height: int, seed: int) -> bytes:
    """A 16-bit (5-5-5) BMP, which Pillow reads and TensorFlow 2.16's decoder refuses."""
    rng = np.random.default_rng(seed)
    channels = rng.integers(0, 32, (height, width, 3)).astype(np.uint16)
    values = (channels[..., 0] << 10) | (channels[..., 1] << 5) | channels[..., 2]
    padding = b"\0" * ((4 - width * 2 % 4) % 4)
    rows = b"".join(values[y].astype("<u2").tobytes() + padding for y in range(height - 1, -1, -1))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 16, 0, len(rows), 2835, 2835, 0, 0)
    return struct.pack("<2sIHHI", b"BM", 14 + 40 + len(rows), 0, 0, 54) + info + rows


def make_bad_corpus(root: pathlib.Path) -> dict[str, Expected]:
    """Writes the corpus under ``root`` (classes ``cats``, ``dogs``, empty ``birds``).

    Returns the expected verdict for every file the listing ingests, keyed by its
    path relative to ``root``.  Hidden files, the empty folder and the link loop
    are not in it: they are listed, not ingested.
    """
    expected: dict[str, Expected] = {}

    def put(relative: str, data: bytes, verdict: Expected) -> None:
        """``relative`` is the escaped name the reports use; the file gets the real one."""
        path = root / names.os_path(relative)
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
    # Formats TensorFlow does not read (or misreads) become PNG; one nothing here decodes is rejected.
    put("dogs/photo.webp", _encode(_image(seed=36), "WEBP"), Expected(None, (checks.CONVERTED_TO_PNG,)))
    put("cats/scan.tiff", _encode(_image(seed=40), "TIFF"), Expected(None, (checks.CONVERTED_TO_PNG,)))
    put("cats/scan16.tif", _encode(Image.fromarray(np.random.default_rng(41).integers(0, 65535, (40, 48))
                                                   .astype(np.uint16)), "TIFF"),
        Expected(None, (checks.GRAYSCALE, checks.HIGH_BIT_DEPTH, checks.CONVERTED_TO_PNG)))
    put("dogs/palette.bmp", _encode(_image(seed=42).convert("P"), "BMP"),
        Expected(None, (checks.PALETTE, checks.CONVERTED_TO_PNG)))
    put("dogs/one_bit.bmp", _encode(_image(seed=43).convert("1"), "BMP"),
        Expected(None, (checks.GRAYSCALE, checks.CONVERTED_TO_PNG)))
    put("dogs/rgb555.bmp", rgb555_bmp(48, 40, 46), Expected(None, (checks.CONVERTED_TO_PNG,)))
    put("cats/progressive.jpg", _encode(_image(seed=44), "JPEG", progressive=True), Expected(None))
    put("dogs/icon.ico", _encode(_image(size=(32, 32), seed=45), "ICO"), Expected(None, (checks.CONVERTED_TO_PNG,)))
    put("dogs/phone.heic", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64),
        Expected(checks.FORMAT_NOT_ALLOWED))
    put("cats/key.jpg", b"-----BEGIN FAKE PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n",
        Expected(checks.NOT_AN_IMAGE))
    put("dogs/banner.png", _encode(_image(size=(400, 20), seed=37), "PNG"), Expected(checks.EXTREME_ASPECT_RATIO))
    put("readme.txt", b"cats and dogs", Expected(checks.OUTSIDE_CLASS_FOLDER))

    # Any name: bytes that are not UTF-8, control characters, Markdown's table and code marks,
    # a leading dash, a 255-byte name, and a class folder in another script with a space.
    for number, raw in enumerate([b"\xe9t\xe9.jpg", b"new\nline.jpg", b"tab\tname.jpg", b"pipe|and`tick`.jpg",
                                  b"-leading-dash.jpg", b"n" * 251 + b".jpg", b"back\\slash \xc2\xa0nbsp.jpg"]):
        put(names.escape(b"cats/" + raw), _encode(_image(seed=50 + number), "JPEG"), Expected(None))
    for number in range(6):
        put(f"\u0432\u0438\u0448\u043d\u044f class/{number}.jpg", _encode(_image(seed=60 + number), "JPEG"),
            Expected(None))
        put(names.escape(b"caf\xe9/%d.jpg" % number), _encode(_image(seed=70 + number), "JPEG"), Expected(None))
    # Links: to a file outside the data, dangling, and a loop back to the root.
    outside = root.parent / f"{root.name}_outside"
    outside.mkdir(exist_ok=True)
    (outside / "linked.jpg").write_bytes(_encode(_image(seed=38), "JPEG"))
    os.symlink(outside / "linked.jpg", root / "cats" / "linked.jpg")
    expected["cats/linked.jpg"] = Expected(checks.LINK_OUTSIDE_DATA)
    (outside / "secret.pem").write_bytes(b"-----BEGIN FAKE PRIVATE KEY-----\nsecret\n")
    os.symlink(outside / "secret.pem", root / "dogs" / "key_link.jpg")
    expected["dogs/key_link.jpg"] = Expected(checks.LINK_OUTSIDE_DATA)
    os.symlink(outside, root / "dogs" / "outside_folder")
    expected["dogs/outside_folder"] = Expected(checks.LINK_OUTSIDE_DATA)
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


def _photo(seed: int, size=(192, 144)) -> Image.Image:
    """A smooth random colour field: low-frequency structure like a photo's, distinct for every seed."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (size[1] // 16, size[0] // 16, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.BICUBIC)


def _crop(image: Image.Image, left=0.0, top=0.0, right=0.0, bottom=0.0) -> Image.Image:
    width, height = image.size
    return image.crop((int(width * left), int(height * top), width - int(width * right), height - int(height * bottom)))


def make_near_duplicate_corpus(root: pathlib.Path) -> dict[str, Expected]:
    """``train/`` and ``val/`` folders of photo-like images with copies made as people make them.

    Returns every file's expected verdict under the default policy (near-copies
    across splits or classes rejected, within a class flagged).
    """
    from PIL import ImageEnhance  # pylint: disable=import-outside-toplevel

    expected: dict[str, Expected] = {}

    def put(relative: str, image: Image.Image, verdict: Expected, image_format="JPEG", **options) -> None:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_encode(image.convert("RGB"), image_format, **options))
        expected[relative] = verdict

    # Distinct photos: none of them may be grouped.
    for number in range(8):
        for label in ("ants", "bees"):
            put(f"train/{label}/distinct_{number}.jpg", _photo(1000 + number + (100 if label == "bees" else 0)),
                Expected(None))
        put(f"val/{'ants' if number % 2 else 'bees'}/distinct_{number}.jpg", _photo(2000 + number), Expected(None))

    a = _photo(1)  # re-saved and cropped within its class: kept, flagged
    put("train/ants/a.jpg", a, Expected(None))
    put("train/ants/a_quality60.jpg", a, Expected(None, (checks.NEAR_DUPLICATE_IN_CLASS,)), quality=60)
    put("train/ants/a_cropped.jpg", _crop(a, 0.05, 0.05, 0.05, 0.05), Expected(None, (checks.NEAR_DUPLICATE_IN_CLASS,)))
    b = _photo(2)  # resized, brightened or cropped into the validation folder: leakage
    put("train/bees/b.jpg", b, Expected(None))
    put("val/bees/b_half.jpg", b.resize((96, 72), Image.BICUBIC), Expected(checks.NEAR_DUPLICATE_LEAKAGE))
    put("val/bees/b_brighter.jpg", ImageEnhance.Brightness(b).enhance(1.1), Expected(checks.NEAR_DUPLICATE_LEAKAGE))
    put("val/bees/b_cropped.jpg", _crop(b, right=0.05), Expected(checks.NEAR_DUPLICATE_LEAKAGE))
    c = _photo(3)  # one photo under two classes, as JPEG and as PNG: a label conflict
    put("train/ants/c.jpg", c, Expected(checks.NEAR_DUPLICATE_LABEL_CONFLICT))
    put("train/bees/c.png", c, Expected(checks.NEAR_DUPLICATE_LABEL_CONFLICT), image_format="PNG")
    d = _photo(4)  # the same bytes in both splits: leakage, as an exact copy
    put("train/ants/d.jpg", d, Expected(None))
    put("val/ants/d.jpg", d, Expected(checks.SPLIT_LEAKAGE))
    e = _photo(5)  # slightly recoloured within a class
    put("train/bees/e.jpg", e, Expected(None))
    put("train/bees/e_saturated.jpg", ImageEnhance.Color(e).enhance(1.2),
        Expected(None, (checks.NEAR_DUPLICATE_IN_CLASS,)))
    return expected
