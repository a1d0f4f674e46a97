"""The ingest executor: a listed file to a reference, and its Do() on folders as TFX calls it."""

import os

import pytest
import tensorflow as tf

from components import artifacts, features
from components.artifacts import read_listing
from components.image_ingest.executor import file_reference
from tests.helpers import HYMENOPTERA, encode_image, run_ingest, write_image_folder


def _value(example: tf.train.Example, name: str):
    feature = example.features.feature[name]
    values = feature.bytes_list.value or feature.int64_list.value
    return values[0].decode() if isinstance(values[0], bytes) else values[0]


def test_a_reference_names_the_file_and_holds_none_of_its_bytes():
    example = file_reference("train/cats/my cat.png", "cats", 1234)
    assert _value(example, features.RELATIVE_PATH) == "train/cats/my cat.png"
    assert _value(example, features.LABEL) == "cats"
    assert _value(example, features.FILE_BYTES) == 1234
    assert _value(example, features.INGEST_ERROR) == ""
    assert features.IMAGE not in example.features.feature


def _paths(examples):
    return sorted(_value(e, features.RELATIVE_PATH) for e in examples)


def test_executor_hash_splits_class_folders_and_keeps_every_file(tmp_path):
    files = {f"{label}/{n:02d}.jpg": encode_image(colour) for n in range(12) for label, colour in
             (("cat", (200, 10, 10)), ("dog", (10, 10, 200)))}
    files["cat/not an image.jpg"] = b"plain text"
    data_dir = write_image_folder(tmp_path / "data", files)

    outputs = run_ingest(data_dir, tmp_path / "artifact", return_artifact=True)
    splits = run_ingest(data_dir, tmp_path / "out")

    assert set(splits) == {"train", "eval"}
    assert sorted(_paths(splits["train"]) + _paths(splits["eval"])) == sorted(files)
    assert splits["train"] and splits["eval"]
    by_path = {_value(e, features.RELATIVE_PATH): e for e in splits["train"] + splits["eval"]}
    assert _value(by_path["cat/not an image.jpg"], features.FILE_BYTES) == len(b"plain text")
    assert _value(by_path["dog/03.jpg"], features.LABEL) == "dog"
    assert _value(by_path["dog/03.jpg"], features.FILE_BYTES) == len(files["dog/03.jpg"])
    # The validator reads the files from where the artifact says they are.
    assert artifacts.data_root(outputs.examples) == str(data_dir)

    # The seed chooses the split: the same seed gives the same one, another seed another.
    assert _paths(run_ingest(data_dir, tmp_path / "same")["eval"]) == _paths(splits["eval"])
    reseeded = run_ingest(data_dir, tmp_path / "reseeded", split_seed=8)
    assert _paths(reseeded["eval"]) != _paths(splits["eval"])
    assert sorted(_paths(reseeded["train"]) + _paths(reseeded["eval"])) == sorted(files)

    # The split follows the seed and the relative path only: adding files moves none of the old ones.
    write_image_folder(data_dir, {f"dog/new_{n}.png": encode_image(image_format="PNG") for n in range(5)})
    again = run_ingest(data_dir, tmp_path / "out2")
    assert set(_paths(splits["eval"])) <= set(_paths(again["eval"]))
    assert set(_paths(splits["train"])) <= set(_paths(again["train"]))


def test_executor_keeps_split_folders(tmp_path):
    files = {
        "train/a/1.jpg": encode_image(),
        "train/b/2.png": encode_image(image_format="PNG"),
        "val/a/3.bmp": encode_image(image_format="BMP"),
        "val/b/4.gif": encode_image(image_format="GIF"),
    }
    splits = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "out")
    assert _paths(splits["train"]) == ["train/a/1.jpg", "train/b/2.png"]
    assert _paths(splits["eval"]) == ["val/a/3.bmp", "val/b/4.gif"]
    assert sorted(_value(e, features.LABEL) for e in splits["eval"]) == ["a", "b"]


@pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason="shared hymenoptera dataset not present")
def test_executor_ingests_hymenoptera_in_place(tmp_path):
    on_disk = {
        os.path.relpath(os.path.join(folder, name), HYMENOPTERA)
        for folder, _, names in os.walk(HYMENOPTERA)
        for name in names
    }
    splits = run_ingest(HYMENOPTERA, tmp_path / "out")

    assert set(splits) == {"train", "eval"}
    ingested = {_value(e, features.RELATIVE_PATH): e for e in splits["train"] + splits["eval"]}
    assert set(ingested) == on_disk  # every file, none twice
    assert len(ingested) == len(splits["train"]) + len(splits["eval"])
    assert _value(ingested["train/ants/imageNotFound.gif"], features.LABEL) == "ants"
    spaced = ingested["train/ants/ant photos.jpg"]
    assert _value(spaced, features.FILE_BYTES) == (HYMENOPTERA / "train/ants/ant photos.jpg").stat().st_size
    assert {_value(e, features.LABEL) for e in ingested.values()} == {"ants", "bees"}


def test_links_leaving_the_data_folder_are_referenced_when_the_policy_allows(tmp_path):
    data = write_image_folder(tmp_path / "data", {f"{c}/{n}.jpg": encode_image((40 * n, 90, 200 if c == "b" else 5))
                                                  for n in range(4) for c in ("a", "b")})
    outside = write_image_folder(tmp_path / "outside", {"x.jpg": encode_image((1, 250, 1), size=(64, 48))})
    os.symlink(outside / "x.jpg", data / "a" / "linked.jpg")
    refused = {e.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode(): e
               for split in run_ingest(data, tmp_path / "refused").values() for e in split}
    assert _value(refused["a/linked.jpg"], features.INGEST_ERROR) == features.OUTSIDE_LINK_ERROR
    followed = {e.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode(): e
                for split in run_ingest(data, tmp_path / "followed", follow_outside_links=True).values()
                for e in split}
    assert _value(followed["a/linked.jpg"], features.INGEST_ERROR) == ""
    assert _value(followed["a/linked.jpg"], features.FILE_BYTES) == (outside / "x.jpg").stat().st_size


def test_an_unlabelled_folder_becomes_one_predict_split_of_every_file(tmp_path):
    """PredictExampleGen: files in the root and below, any depth, each with an empty label;
    hidden entries left out, as for training data."""
    files = {"a.jpg": encode_image(), "nested/deeper/b.png": encode_image(image_format="PNG"),
             "notes.txt": b"text", ".DS_Store": b"\0", "nested/.hidden.jpg": encode_image()}
    data = write_image_folder(tmp_path / "to_score", files)
    outputs = run_ingest(data, tmp_path / "out", unlabelled=True, return_artifact=True)
    examples = run_ingest(data, tmp_path / "out2", unlabelled=True)

    assert list(examples) == ["predict"]
    paths = sorted(e.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode() for e in examples["predict"])
    assert paths == ["a.jpg", "nested/deeper/b.png", "notes.txt"]
    assert {e.features.feature[features.LABEL].bytes_list.value[0] for e in examples["predict"]} == {b""}
    listing = read_listing(outputs.listing.uri)["."]
    assert listing["files"] == paths and listing["outside_class_folders"] == [] and listing["class_folders"] == []
    assert sorted(listing["hidden"]) == [".DS_Store", "nested/.hidden.jpg"]
