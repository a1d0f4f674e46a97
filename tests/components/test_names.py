"""Escaped names: any byte string a folder can hold becomes one printable line and back."""

import random

import pytest

from components import names

ODD_NAMES = [
    b"plain/0013035.jpg", b"\xe9t\xe9.jpg", b"new\nline.jpg", b"tab\tname.jpg", b"pipe|and`tick`.jpg",
    b"-leading-dash.jpg", b"n" * 255, b"back\\slash.jpg", b"\\xe9 literally.jpg", b"nbsp\xc2\xa0.jpg",
    "вишня class/photo.jpg".encode(), b"\x7f\x01\x1b[31mred", b"\xff\xfe", "emoji 🐝.png".encode(),
]


@pytest.mark.parametrize("raw", ODD_NAMES)
def test_escape_is_printable_and_maps_back(raw):
    escaped = names.escape(raw)
    assert escaped.isprintable() and "\n" not in escaped and "\t" not in escaped
    escaped.encode("utf-8")  # valid UTF-8, whatever the bytes were
    assert names.unescape(escaped) == raw
    # A str as os.listdir returns it (undecodable bytes as surrogates) escapes the same.
    assert names.escape(raw.decode("utf-8", "surrogateescape")) == escaped


def test_random_byte_names_round_trip():
    rng = random.Random(0)
    for _ in range(2000):
        raw = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))
        assert names.unescape(names.escape(raw)) == raw


def test_ordinary_names_are_unchanged_and_distinct_names_stay_distinct():
    assert names.escape("ants/0013035.jpg") == "ants/0013035.jpg"
    assert names.escape("вишня class/фото 1.jpg") == "вишня class/фото 1.jpg"
    # A literal backslash-x in a name is not confused with an escaped byte.
    assert names.escape(b"\\xe9") != names.escape(b"\xe9")


def test_markdown_code_fences_backticks():
    assert names.markdown_code("a.jpg") == "`a.jpg`"
    assert names.markdown_code("a`b`.jpg") == "``a`b`.jpg``"
    assert names.markdown_code("`x") == "`` `x ``"
