"""How a data folder is read: split folders or class folders, and the layouts refused."""

import os

import pytest

from components.image_folder import detect_split_folders


def _make_dirs(root, *relative):
    for path in relative:
        os.makedirs(os.path.join(root, path), exist_ok=True)
    return str(root)


def test_detect_class_folders(tmp_path):
    assert detect_split_folders(_make_dirs(tmp_path, "cats", "dogs")) is None


def test_a_class_named_like_a_split_is_still_a_class(tmp_path):
    assert detect_split_folders(_make_dirs(tmp_path, "test", "dogs")) is None


def test_detect_split_folders_maps_val_to_eval_and_keeps_test(tmp_path):
    root = _make_dirs(tmp_path, "train/a", "val/a", "test/a")
    assert detect_split_folders(root) == {"train": "train", "eval": "val", "test": "test"}


def test_detect_split_folders_uses_test_when_no_validation_folder(tmp_path):
    assert detect_split_folders(_make_dirs(tmp_path, "train/a", "test/a")) == {"train": "train", "eval": "test"}


@pytest.mark.parametrize(
    "folders, message",
    [
        (("train/a", "val/a", "cats"), "mixes split folders"),
        (("train/a", "validation/a", ".hidden", "notes"), "mixes split folders"),
        (("val/a", "test/a"), "no 'train'"),
        (("train/a",), "no evaluation folder"),
        ((), "has no sub-folders"),
    ],
)
def test_detect_split_folders_rejects_bad_layouts(tmp_path, folders, message):
    with pytest.raises(ValueError, match=message):
        detect_split_folders(_make_dirs(tmp_path, *folders))
