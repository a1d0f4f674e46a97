"""Per-file checks: the policy's bounds, rejecting instead of converting, and a batch decode
that singles out a broken file."""

import pytest

from components.image_validator import checks, near_duplicates
from components.image_validator.policy import ValidationPolicy
from tests.helpers import encode_image


@pytest.mark.parametrize(
    "policy, reason",
    [
        (ValidationPolicy(allowed_formats=("png",)), checks.FORMAT_NOT_ALLOWED),
        (ValidationPolicy(max_file_bytes=100), checks.FILE_TOO_LARGE),
        (ValidationPolicy(min_file_bytes=10_000), checks.FILE_TOO_SMALL),
        (ValidationPolicy(max_width=30), checks.IMAGE_TOO_LARGE),
        (ValidationPolicy(max_pixels=1000), checks.DECOMPRESSION_BOMB),
    ],
)
def test_policy_bounds(policy, reason):
    assert checks.inspect_image(encode_image(size=(40, 30)), "a/x.jpg", policy).reason == reason


def test_policy_can_reject_instead_of_converting():
    from tests.bad_corpus import _encode, _image  # pylint: disable=import-outside-toplevel

    cmyk = _encode(_image(mode="CMYK"), "JPEG")
    assert checks.inspect_image(cmyk, "a/x.jpg", ValidationPolicy(convert_cmyk=False)).reason == (
        checks.UNSUPPORTED_COLOR_MODE)
    frames = [_image(seed=s) for s in (1, 2)]
    animated = _encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert checks.inspect_image(animated, "a/x.gif", ValidationPolicy(accept_animated=False)).reason == checks.ANIMATED


def test_a_broken_file_in_a_decode_batch_is_singled_out_and_the_rest_are_hashed_as_alone():
    from tests.helpers import encode_distinct_image  # pylint: disable=import-outside-toplevel

    good = [encode_distinct_image((90, 120, 150), seed, size=(300, 200)) for seed in range(5)]
    truncated = good[0][: len(good[0]) // 2]  # a valid header, half its pixels
    png = encode_distinct_image((30, 160, 60), 9, size=(80, 90), image_format="PNG")
    files = [good[1], truncated, good[2], png, good[3], good[4]]
    batch = checks.inspect_images([(data, f"c/{i}.x", "") for i, data in enumerate(files)], ValidationPolicy())
    alone = [checks.inspect_image(data, f"c/{i}.x", ValidationPolicy()) for i, data in enumerate(files)]

    assert [i.reason for i in batch] == [None, checks.CORRUPT_IMAGE, None, None, None, None]
    assert "decode failed" in batch[1].detail
    assert [i.hashes for i in batch] == [i.hashes for i in alone]
    assert all(len(i.hashes) == near_duplicates.SIGNATURE_BYTES for i in batch if i.reason is None)
