"""Augmentation previews: the grid of originals and augmented versions, and `make preview`'s command."""

import numpy as np
import pytest
import tensorflow as tf

from components.trainer import preview
from components.trainer.params import AugmentParams
from tests.components.trainer.augmentation.sample_batches import colour_batch
from tests.helpers import CLASS_COLOURS, encode_image


def test_preview_grid_puts_originals_first():
    images, _ = colour_batch(size=16)
    grid = preview.preview_grid(images, AugmentParams.from_preset("heavy"), versions=3, seed=1)
    assert grid.dtype == tf.uint8 and grid.shape == (4 * 20, 4 * 20, 3)
    tiles = grid.numpy().reshape(4, 20, 4, 20, 3)[:, :16, :, :16].transpose(0, 2, 1, 3, 4)  # [row, column, y, x, 3]
    for row, image in enumerate(images.numpy().astype(np.uint8)):
        np.testing.assert_array_equal(tiles[row, 0], image)  # each row starts with its original
        for column in (1, 2, 3):
            assert not np.array_equal(tiles[row, column], image)  # then augmented versions of it


def test_preview_command_writes_a_png(tmp_path):
    data_dir = tmp_path / "data"
    for label, colour in CLASS_COLOURS.items():
        (data_dir / label).mkdir(parents=True)
        for n in range(2):
            (data_dir / label / f"{n}.jpg").write_bytes(encode_image(colour))
    output = tmp_path / "preview.png"
    assert preview.main(["--data-dir", str(data_dir), "--preset", "heavy", "--image-size", "32",
                         "--count", "4", "--versions", "2", "--output", str(output)]) == 0
    grid = tf.io.decode_png(output.read_bytes())
    assert grid.shape == (4 * 36, 3 * 36, 3)
    assert preview.main(["--data-dir", str(tmp_path / "missing"), "--output", str(output)]) == 2


def test_preview_takes_the_trainers_augment_flags_and_refuses_bad_numbers(capsys):
    args = preview.build_arg_parser().parse_args(
        ["--data-dir", "d", "--preset", "heavy", "--no-augment-color", "--augment-mixup-prob", "0"])
    assert preview.augment_params(args) == AugmentParams.from_preset("heavy", color=False, mixup_prob=0.0)
    for bad, message in ((["--count", "0"], "must be at least 1"), (["--image-size", "0"], "must be at least 8"),
                         (["--augment-mixup-prob", "0.9", "--augment-cutmix-prob", "0.9"], "at most 1"),
                         (["--image-size", "8", "--augment-blur-prob", "0.5", "--augment-blur", "3"],
                          "less than the image size, 8")):
        with pytest.raises(SystemExit) as exit_info:
            preview.main(["--data-dir", "d"] + bad)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
