"""Image bytes: the signature table, headers read in Python, and the TensorFlow
decode and resize that the validator, training, evaluation and serving share."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from components import features, image_bytes
from tests.helpers import HYMENOPTERA, encode_image

# Every format of the table that Pillow writes, as Pillow names it.
WRITTEN = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "ICO", "WEBP", "AVIF")


def _with_signature(image_format: image_bytes.ImageFormat) -> list[bytes]:
    """The shortest starts of a file carrying each of the format's signatures."""
    if image_format.container is None:
        return [signature + bytes(16) for signature in image_format.signatures]
    offset, tag = image_format.container
    return [(bytes(offset) + tag + b"\0" * 8)[:8] + brand + bytes(16) for brand in image_format.brands]


@pytest.mark.parametrize("image_format", image_bytes.FORMATS, ids=lambda f: f.name)
def test_each_signature_in_the_table_names_its_format(image_format):
    starts = _with_signature(image_format)
    assert [image_bytes.signature_format(data) for data in starts] == [image_format.name] * len(starts)
    # A format without a signature (AVIF) is known by its extension only.
    assert starts or image_format.extensions


@pytest.mark.parametrize("pillow_format", WRITTEN)
def test_files_pillow_writes_are_told_by_signature_and_header_alike(pillow_format):
    data = encode_image(size=(37, 21), image_format=pillow_format)
    name = pillow_format.lower()
    assert name in image_bytes.BY_NAME
    assert image_bytes.signature_format(data) == (None if name == image_bytes.AVIF else name)
    assert image_bytes.read_header(data).image_format == name
    assert image_bytes.heif_brand(data) is None


def test_heif_files_are_told_by_their_brand():
    for brand in image_bytes.BY_NAME[image_bytes.HEIF].brands:
        data = b"\x00\x00\x00\x18ftyp" + brand + b"\x00\x00\x00\x00mif1heic" + bytes(64)
        assert image_bytes.heif_brand(data) == brand.decode("ascii")
        assert image_bytes.signature_format(data) == image_bytes.HEIF
    assert image_bytes.heif_brand(encode_image(image_format="AVIF")) is None  # the same box, another brand


@pytest.mark.parametrize("data", [b"", b"<html>404 not found</html>", b"%PDF-1.4\n", b"PK\x03\x04", b"RIFF\0\0\0\0WAVE",
                                  b"\xff\xd8", b"GIF8", b"\x89PNG"])
def test_other_bytes_have_no_image_signature(data):
    assert image_bytes.signature_format(data) is None
    assert image_bytes.heif_brand(data) is None


def test_extensions_claim_the_formats_the_validator_compares():
    assert image_bytes.EXTENSIONS == {
        ".jpg": "jpeg", ".jpeg": "jpeg", ".jpe": "jpeg", ".png": "png", ".gif": "gif", ".bmp": "bmp",
        ".webp": "webp", ".tif": "tiff", ".tiff": "tiff", ".avif": "avif"}


@pytest.mark.parametrize("pillow_format", WRITTEN)
def test_tensorflow_formats_are_the_ones_decode_image_reads(pillow_format):
    data = encode_image(size=(37, 21), image_format=pillow_format)
    decoder = tf.constant(image_bytes.ANY_FORMAT)
    if pillow_format.lower() in image_bytes.TENSORFLOW_FORMATS:
        assert image_bytes.decode(tf.constant(data), decoder).shape == (21, 37, 3)
    else:
        with pytest.raises(tf.errors.InvalidArgumentError):
            image_bytes.decode(tf.constant(data), decoder)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "GIF", "BMP"])
def test_read_header_reports_format_and_size(image_format):
    assert image_bytes.read_header(encode_image(size=(37, 21), image_format=image_format))[:3] == (
        image_format.lower(), 21, 37)


def test_read_header_channels():
    assert image_bytes.read_header(encode_image(image_format="PNG", mode="L"))[3] == 1
    assert image_bytes.read_header(encode_image(image_format="PNG", mode="RGBA"))[3] == 4
    assert image_bytes.read_header(encode_image(image_format="JPEG"))[3] == 3


@pytest.mark.parametrize("data", [b"", b"<html>404 not found</html>", b"\xff\xd8\xff\xe0 truncated"])
def test_read_header_of_non_images_is_unknown(data):
    assert image_bytes.read_header(data) == (features.UNKNOWN_FORMAT, 0, 0, 0)


@pytest.mark.parametrize("pillow_format", WRITTEN)
def test_a_truncated_header_is_unknown_but_keeps_its_signature(pillow_format):
    data = encode_image(size=(37, 21), image_format=pillow_format)
    for length in (4, 12, 16, 24):
        assert image_bytes.read_header(data[:length]) == image_bytes.UNKNOWN_HEADER, length
        assert image_bytes.plain_jpeg(data[:length]) is None
    if pillow_format != "AVIF":
        assert image_bytes.signature_format(data[:12]) == pillow_format.lower()


def _jpeg(mode="RGB", **options) -> bytes:
    from tests.bad_corpus import _encode, _image  # pylint: disable=import-outside-toplevel

    return _encode(_image(mode=mode), "JPEG", **options)


def test_plain_jpeg_headers_read_like_pillow_and_anything_else_goes_to_pillow():
    exif = Image.Exif()
    exif[0x0112] = 6
    plain = {"rgb": _jpeg(), "grey": _jpeg("L"), "progressive": _jpeg(progressive=True), "q40": _jpeg(quality=40)}
    for name, data in plain.items():
        with Image.open(io.BytesIO(data)) as image:
            assert image_bytes.plain_jpeg(data) == ("jpeg", image.height, image.width, len(image.getbands())), name
            assert image_bytes.plain_jpeg(data) == image_bytes.read_header(data), name
    others = {"cmyk": _jpeg("CMYK"), "exif": _jpeg(exif=exif.tobytes()), "png": encode_image(image_format="PNG"),
              "truncated header": _jpeg()[:20], "not a marker": b"\xff\xd8\x00" + _jpeg()[3:]}
    for name, data in others.items():
        assert image_bytes.plain_jpeg(data) is None, name
    if HYMENOPTERA.is_dir():
        for path in sorted(HYMENOPTERA.rglob("*.jp*g")):
            data = path.read_bytes()
            header = image_bytes.plain_jpeg(data)
            with Image.open(io.BytesIO(data)) as image:
                assert header in (None, ("jpeg", image.height, image.width, len(image.getbands()))), path


def test_header_pixels_reads_every_format_without_decoding():
    for image_format in ("JPEG", "PNG", "GIF", "BMP"):
        data = encode_image(size=(37, 21), image_format=image_format)
        assert int(image_bytes.header_pixels(tf.constant(data))) == 37 * 21, image_format
    assert int(image_bytes.header_pixels(tf.constant(b"hello"))) == -1


def test_header_pixels_of_a_truncated_jpeg_header_fails_and_of_other_formats_is_minus_one():
    with pytest.raises(tf.errors.InvalidArgumentError):
        image_bytes.header_pixels(tf.constant(encode_image(size=(64, 64))[:20]))
    for pillow_format in ("TIFF", "ICO", "WEBP"):
        assert int(image_bytes.header_pixels(tf.constant(encode_image(image_format=pillow_format)))) == -1


def test_decode_batch_checks_every_header_against_the_limit_it_is_given():
    good = encode_image(size=(40, 30))
    assert image_bytes.decode_batch(tf.constant([good, good]), 16, max_pixels=1200).shape == (2, 16, 16, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more than 1199 pixels"):
        image_bytes.decode_batch(tf.constant([good]), 16, max_pixels=1199)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Not a JPEG, PNG, GIF or BMP image"):
        image_bytes.decode_batch(tf.constant([good, b"<html>not an image</html>"]), 16, max_pixels=1200)


@pytest.mark.parametrize("min_side", [16, 32, 64])
def test_the_decoder_chosen_in_python_is_the_one_chosen_in_a_graph(min_side):
    """The validator picks a JPEG's scale from the header it read in Python; training and
    serving pick it in the graph: the same scale for the same file."""
    for height, width in ((20, 30), (63, 90), (64, 64), (130, 200), (300, 260), (520, 700)):
        data = _photo_jpeg(height, width)
        index = image_bytes.decoder_index(data, height, width, min_side)
        assert index == int(image_bytes.decoder_of(tf.constant(data), min_side)), (height, width)
        scale = image_bytes.JPEG_SCALES[index]
        assert min(height, width) >= min_side * scale or scale == 1
        assert index == len(image_bytes.JPEG_SCALES) - 1 or min(height, width) < min_side * 2 * scale
    png = encode_image(size=(300, 260), image_format="PNG")
    assert image_bytes.decoder_index(png, 260, 300, min_side) == image_bytes.ANY_FORMAT
    assert int(image_bytes.decoder_of(tf.constant(png), min_side)) == image_bytes.ANY_FORMAT


def test_decode_and_resize_handles_grayscale_alpha_and_gif():
    for data in (
        encode_image(image_format="PNG", mode="L"),
        encode_image(image_format="PNG", mode="RGBA"),
        encode_image(image_format="GIF"),
        encode_image(image_format="BMP"),
    ):
        image = image_bytes.decode_and_resize(data, 16)
        assert image.shape == (16, 16, 3) and image.dtype == tf.float32
        np.testing.assert_array_equal(image, np.round(image))  # whole numbers: cacheable as uint8


def _checkerboard_png(height, width, cell):
    rows, columns = np.indices((height, width))
    board = ((rows // cell + columns // cell) % 2 * 255).astype(np.uint8)
    return tf.io.encode_png(np.repeat(board[..., None], 3, axis=2)).numpy()


def test_shrinking_averages_fine_detail_instead_of_aliasing():
    """A 1-pixel checkerboard shrunk 3x: sampling would give black and white; averaging gives greys."""
    shrunk = image_bytes.decode_and_resize(_checkerboard_png(96, 96, 1), 32).numpy()
    assert shrunk.min() > 64 and shrunk.max() < 192
    # Shrinking one way while growing the other (the bilinear path) averages too.
    mixed = image_bytes.decode_and_resize(_checkerboard_png(40, 144, 1), 48).numpy()
    assert np.ptp(mixed) < 128
    # Squares as big as the shrink factor stay black and white.
    assert set(np.unique(image_bytes.decode_and_resize(_checkerboard_png(96, 96, 3), 32))) == {0.0, 255.0}


def _photo_jpeg(height, width, mode="RGB"):
    """A JPEG of smooth random colours (a 6x6 grid blown up), which compresses like a photo."""
    rng = np.random.default_rng(height * width)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    small.resize((width, height), Image.BICUBIC).convert(mode).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.mark.parametrize("height, width, scale", [
    (63, 90, 1),    # short side under 2x the size: decoded whole
    (64, 90, 2),    # exactly 2x: half size is the image size itself
    (130, 200, 4),  # 4x and more: a quarter
    (300, 260, 8),
])
def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_keeps_the_image_size(height, width, scale):
    data = _photo_jpeg(height, width)
    image = image_bytes.decode_and_resize(data, 32).numpy()
    scaled = tf.io.decode_jpeg(data, channels=3, ratio=scale)
    assert min(scaled.shape[:2]) >= 32
    expected = scaled if scaled.shape[:2] == (32, 32) else tf.image.resize(scaled, [32, 32], method="area")
    np.testing.assert_array_equal(image, np.round(expected))
    # The same picture as a full decode would give, within a few levels (a side that is not a whole number
    # of scaled pixels ends in a part pixel kept whole, which stretches the picture by under a pixel).
    full = tf.image.resize(tf.io.decode_jpeg(data, channels=3), [32, 32], method="area").numpy()
    assert np.abs(image - full).mean() < 8


def test_a_grayscale_jpeg_decoded_at_a_reduced_scale_still_has_three_channels():
    image = image_bytes.decode_and_resize(_photo_jpeg(200, 150, mode="L"), 32).numpy()
    assert image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image[..., 0], image[..., 2])


def test_an_image_at_the_size_keeps_its_exact_pixels_in_either_dtype():
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    encoded = tf.io.encode_png(pixels).numpy()
    as_float = image_bytes.decode_and_resize(encoded, 32)
    as_uint8 = image_bytes.decode_and_resize(encoded, 32, tf.uint8)
    assert as_float.dtype == tf.float32 and as_uint8.dtype == tf.uint8
    np.testing.assert_array_equal(as_uint8.numpy(), pixels)
    np.testing.assert_array_equal(as_float.numpy(), pixels.astype(np.float32))
    # Resized images give the same values in either dtype too.
    np.testing.assert_array_equal(image_bytes.decode_and_resize(encoded, 20, tf.uint8).numpy(),
                                  image_bytes.decode_and_resize(encoded, 20).numpy().astype(np.uint8))
