"""Near-duplicate images: a perceptual hash from the decoded pixels, and groups of close hashes.

The hash (a DCT "pHash" at hash size 16): the image is area-averaged to
64x64 (``hash_input``, in TensorFlow, batched with the decode), its luma is
box-averaged to 64x64 by a product with precomputed matrices (which also cut
the crops below), its 16x16 lowest 2-D DCT frequencies are compared with their
median, and the 256 signs are the hash.  Resizing, re-encoding and small colour
or contrast changes flip few of them; distinct photos differ in about half.

Crops: a crop moves the whole picture, so each image also gets the hashes of
fourteen crops of itself (2.5% and 5% off every side, 5% off each one side,
2.5% and 5% off each corner's two sides).  A copy cropped by up to 5% off one
side, two adjacent sides or all four then matches one of them closely.

Colour: the hash sees only luma, so two pictures of one layout in other colours
would match; a link also needs the images' mean colours within a tolerance
(per channel, in 0-255 levels), which a slight recolouring keeps.

Grouping never compares all pairs.  The 256 bits are cut into 16 bands of 16
bits; an image's hashes (full and crops) are looked up, band by band, in a
table of every image's full hash, and only images that share a band exactly
become candidates; a candidate within ``threshold`` bits is a link, and the
linked components are the groups.  Two hashes within 15 bits always share a
band; at 32 bits, most pairs still do.  With hashes spread evenly, each lookup
finds about n / 65,536 unrelated images per band, so the work grows as
n x (1 + n / 4,096) band lookups: linear up to tens of thousands of images.

TensorFlow and NumPy rather than the ``imagehash`` library: the validator
already holds the decoded pixels in TensorFlow (imagehash starts from a Pillow
image and adds PyWavelets), and all fifteen hashes of a batch of images come
from two matrix products.
"""

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

HASH_BITS = 256
HASH_BYTES = HASH_BITS // 8
INPUT_SIDE = 64  # hash_input's size: the crops are box averages over it
_SIDE = 64  # the DCT's input: 64x64 luma
_LOW = 16  # the 16x16 lowest frequencies
# (left, top, right, bottom) fractions cut off; the first is the image itself.
CROPS = (
    (0.0, 0.0, 0.0, 0.0),
    (0.025, 0.025, 0.025, 0.025),
    (0.05, 0.05, 0.05, 0.05),
    (0.05, 0.0, 0.0, 0.0),
    (0.0, 0.05, 0.0, 0.0),
    (0.0, 0.0, 0.05, 0.0),
    (0.0, 0.0, 0.0, 0.05),
    (0.025, 0.025, 0.0, 0.0),
    (0.0, 0.025, 0.025, 0.0),
    (0.0, 0.0, 0.025, 0.025),
    (0.025, 0.0, 0.0, 0.025),
    (0.05, 0.05, 0.0, 0.0),
    (0.0, 0.05, 0.05, 0.0),
    (0.0, 0.0, 0.05, 0.05),
    (0.05, 0.0, 0.0, 0.05),
)
_BANDS = HASH_BITS // 16
SIGNATURE_BYTES = len(CROPS) * HASH_BYTES + 3
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], np.uint8)
_LUMA = (0.299, 0.587, 0.114)


def _box_average(start: float, stop: float, size: int, source: int) -> np.ndarray:
    """``[size, source]``: row i averages source pixels over [start + i*step, start + (i+1)*step)."""
    step = (stop - start) / size
    lows = start + step * np.arange(size)[:, None]
    pixels = np.arange(source)[None, :]
    overlap = np.clip(np.minimum(pixels + 1, lows + step) - np.maximum(pixels, lows), 0, None)
    return (overlap / step).astype(np.float32)


def _dct_rows(size: int, count: int) -> np.ndarray:
    """The first ``count`` rows of the orthonormal DCT-II matrix of ``size`` points."""
    k = np.arange(count)[:, None]
    i = np.arange(size)[None, :]
    matrix = np.cos(np.pi * (2 * i + 1) * k / (2 * size)) * np.sqrt(2.0 / size)
    matrix[0] /= np.sqrt(2.0)
    return matrix.astype(np.float32)


def _projection(vertical: bool) -> np.ndarray:
    """Per crop, the low DCT rows times the box average from ``INPUT_SIDE`` pixels to 64:
    ``[K, 16, INPUT_SIDE]`` for the rows of an image, ``[K, INPUT_SIDE, 16]`` for its columns."""
    dct = _dct_rows(_SIDE, _LOW)
    cuts = [(top, bottom) if vertical else (left, right) for left, top, right, bottom in CROPS]
    blocks = np.stack([dct @ _box_average(first * INPUT_SIDE, (1 - last) * INPUT_SIDE, _SIDE, INPUT_SIDE)
                       for first, last in cuts])
    return blocks if vertical else np.transpose(blocks, (0, 2, 1))


_ROWS, _COLUMNS = _projection(vertical=True), _projection(vertical=False)


def hash_input(pixels: tf.Tensor) -> tf.Tensor:
    """An RGB ``[h, w, 3]`` image area-averaged to ``[INPUT_SIDE, INPUT_SIDE, 3]`` float32
    (on the decoded uint8 pixels, for the fewest ops per image: the rest runs per batch)."""
    return tf.image.resize(pixels, [INPUT_SIDE, INPUT_SIDE], method="area")


def coefficients(small: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """For a batch of ``hash_input``s, every crop's 256 low DCT coefficients of the
    luma ``[n, K, 256]``, and the mean colours ``[n, 3]``."""
    count = tf.shape(small)[0]
    luma = tf.tensordot(small, tf.constant(_LUMA), axes=1)
    rows = tf.matmul(tf.constant(_ROWS.reshape(-1, INPUT_SIDE)), luma)  # [n, K*16, side]
    both = tf.matmul(tf.reshape(rows, [count, len(CROPS), _LOW, INPUT_SIDE]), tf.constant(_COLUMNS))
    return tf.reshape(both, [count, len(CROPS), _LOW * _LOW]), tf.reduce_mean(small, axis=[1, 2])


def signatures(values: np.ndarray, colours: np.ndarray) -> list[bytes]:
    """Each image's hashes (full, then crops) and mean colour, from its ``coefficients``
    and ``hash_input`` colour: ``SIGNATURE_BYTES`` bytes each."""
    ordered = np.sort(values, axis=-1)  # faster than a partition here
    middle = values.shape[-1] // 2  # 256 values: the median is halfway between the two middle ones
    bits = 2 * values > ordered[..., middle - 1:middle] + ordered[..., middle:middle + 1]
    packed = np.packbits(bits, axis=-1).reshape(len(values), -1)
    rounded = np.clip(colours + 0.5, 0, 255).astype(np.uint8)
    return [hashes.tobytes() + colour.tobytes() for hashes, colour in zip(packed, rounded)]


@tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
def _one(pixels):
    return coefficients(hash_input(pixels)[tf.newaxis])


def perceptual_hashes(pixels: np.ndarray) -> bytes:
    """The signature (``SIGNATURE_BYTES``) of one RGB uint8 ``[h, w, 3]`` image; the
    batched path, ``decoding.decode_batch``, gives the same."""
    values, colour = _one(pixels)
    return signatures(values.numpy(), colour.numpy())[0]


def distance(first: bytes, second: bytes) -> int:
    """Bits in which two single hashes differ."""
    a = np.frombuffer(first, np.uint8)
    b = np.frombuffer(second, np.uint8)
    return int(_POPCOUNT[a ^ b].sum())


def close_pairs(signatures: Sequence[bytes], threshold: int, colour_tolerance: int) -> dict[tuple[int, int], int]:
    """``{(i, j): bits}`` for i < j whose images are within ``threshold`` bits (one
    image's full hash against any of the other's) and ``colour_tolerance`` levels
    of mean colour (see the module docstring)."""
    count = len(signatures)
    if count < 2:
        return {}
    table = np.frombuffer(b"".join(signatures), np.uint8).reshape(count, SIGNATURE_BYTES)
    colours = table[:, -3:].astype(np.int16)
    every = np.ascontiguousarray(table[:, :-3]).reshape(count * len(CROPS), HASH_BYTES)
    full = every[:: len(CROPS)]
    owner = np.arange(len(every)) // len(CROPS)
    every_bands = every.view(">u2")
    full_bands = full.view(">u2")
    found: dict[tuple[int, int], int] = {}
    for band in range(_BANDS):
        keys = full_bands[:, band]
        order = np.argsort(keys, kind="stable")
        starts = np.searchsorted(keys[order], np.arange(65537))
        query_keys = every_bands[:, band].astype(np.int64)
        first, sizes = starts[query_keys], starts[query_keys + 1] - starts[query_keys]
        query = np.repeat(np.arange(len(every)), sizes)
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        candidate = order[np.repeat(first, sizes) + offsets]
        keep = owner[query] != candidate
        query, candidate = query[keep], candidate[keep]
        bits = _POPCOUNT[every[query] ^ full[candidate]].sum(axis=1, dtype=np.int32)
        near = bits <= threshold
        near[near] = np.abs(colours[owner[query[near]]] - colours[candidate[near]]).max(axis=1) <= colour_tolerance
        for i, j, d in zip(owner[query[near]], candidate[near], bits[near]):
            key = (int(min(i, j)), int(max(i, j)))
            found[key] = min(found.get(key, 1 << 30), int(d))
    return found


def groups(count: int, pairs: dict[tuple[int, int], int]) -> list[list[int]]:
    """The linked components with two images or more, each sorted, in order of their first image."""
    parent = list(range(count))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    for i, j in pairs:
        parent[root(i)] = root(j)
    members: dict[int, list[int]] = {}
    for index in range(count):
        members.setdefault(root(index), []).append(index)
    return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])
