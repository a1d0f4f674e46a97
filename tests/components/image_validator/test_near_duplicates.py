"""The perceptual hash and grouping on real photos, the demo data, and copies made as people make them."""

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from components.image_validator import near_duplicates
from pipeline import demo_data
from tests.helpers import HYMENOPTERA

THRESHOLD, COLOUR = 32, 24  # the policy's defaults


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def _reencoded(image: Image.Image, image_format: str, **options) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _crop(image, left=0.0, top=0.0, right=0.0, bottom=0.0):
    width, height = image.size
    return image.crop((int(width * left), int(height * top), width - int(width * right), height - int(height * bottom)))


COPIES = {
    "half size": lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "JPEG quality 60": lambda im: _reencoded(im, "JPEG", quality=60),
    "PNG": lambda im: _reencoded(im, "PNG"),
    "10% brighter": lambda im: ImageEnhance.Brightness(im).enhance(1.1),
    "10% more contrast": lambda im: ImageEnhance.Contrast(im).enhance(1.1),
    "20% more saturated": lambda im: ImageEnhance.Color(im).enhance(1.2),
    "5% off every side": lambda im: _crop(im, 0.05, 0.05, 0.05, 0.05),
    "5% off the left": lambda im: _crop(im, left=0.05),
    "4% off the bottom": lambda im: _crop(im, bottom=0.04),
    "3% off top and left": lambda im: _crop(im, 0.03, 0.03),
}


def _hymenoptera_photos(step=1):
    if not HYMENOPTERA.is_dir():
        pytest.skip("the hymenoptera set is not beside the repository")
    paths = sorted(p for p in HYMENOPTERA.rglob("*.jp*g"))[::step]
    return [Image.open(p).convert("RGB") for p in paths]


def test_distinct_real_photos_form_no_group():
    photos = _hymenoptera_photos()
    signatures = [near_duplicates.perceptual_hashes(_pixels(p)) for p in photos]
    assert len(photos) > 390
    assert near_duplicates.close_pairs(signatures, THRESHOLD, COLOUR) == {}


@pytest.mark.parametrize("copy", sorted(COPIES))
def test_copies_of_real_photos_are_found(copy):
    photos = _hymenoptera_photos(step=8)
    for index, photo in enumerate(photos):
        signatures = [near_duplicates.perceptual_hashes(_pixels(photo)),
                      near_duplicates.perceptual_hashes(_pixels(COPIES[copy](photo)))]
        assert (0, 1) in near_duplicates.close_pairs(signatures, THRESHOLD, COLOUR), (copy, index)


def test_the_demo_shapes_do_not_collapse_into_groups(tmp_path):
    root = demo_data.ensure_demo_dataset(str(tmp_path / "demo"), 100, 0)
    paths = sorted(p for p in __import__("pathlib").Path(root).rglob("*") if p.is_file() and p.name[0] != ".")
    signatures = [near_duplicates.perceptual_hashes(_pixels(Image.open(p))) for p in paths]
    assert len(signatures) == 300
    assert near_duplicates.close_pairs(signatures, THRESHOLD, COLOUR) == {}


def test_same_layout_in_other_colours_is_not_a_copy():
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:24, :32] = 200
    red, blue = pixels.copy(), pixels.copy()
    red[..., 0] += 50
    blue[..., 2] += 50
    signatures = [near_duplicates.perceptual_hashes(red), near_duplicates.perceptual_hashes(blue)]
    assert near_duplicates.close_pairs(signatures, THRESHOLD, COLOUR) == {}


def test_groups_are_linked_components():
    assert near_duplicates.groups(5, {(0, 3): 2, (3, 4): 5}) == [[0, 3, 4]]
    assert near_duplicates.groups(3, {}) == []
