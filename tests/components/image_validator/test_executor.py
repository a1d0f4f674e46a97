"""The validator's executor: its Do() on the bad-input corpus and on small folders, every
file's verdict, the conversions it applies and the schema's label domain."""

import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components import features
from components.image_validator import checks
from components.image_validator.executor import (
    label_domain_from_schema,
)
from tests import bad_corpus
from tests.components.image_validator.validated import RELAXED, validated_paths
from tests.helpers import HYMENOPTERA, encode_image, run_ingest, run_validator, write_image_folder


def test_corpus_has_at_least_15_kinds_of_trouble(corpus):
    _, expected, _ = corpus
    kinds = {e.reason for e in expected.values() if e.reason} | {f for e in expected.values() for f in e.flags}
    assert len(kinds) >= 15


def test_every_file_gets_the_right_verdict_and_nothing_is_lost(corpus, tmp_path):
    _, expected, examples = corpus
    validated, report = run_validator(examples, tmp_path, RELAXED)

    rejected = {r["path"]: r["reason"] for r in report["rejected"]}
    flagged = {r["path"]: tuple(r["flags"]) for r in report["flagged"]}
    used = validated_paths(validated)
    for path, verdict in expected.items():
        if verdict.reason:
            assert rejected.get(path) == verdict.reason, path
            assert path not in used, path
        else:
            assert path in used and path not in rejected, path
            assert flagged.get(path, ()) == verdict.flags, path

    counts = report["counts"]
    assert counts["files_seen"] == len(expected) == counts["examples_used"] + counts["files_rejected"]
    assert counts["examples_used"] == len(used) == sum(counts["used_per_split"].values())
    assert sum(counts["rejected_by_reason"].values()) == counts["files_rejected"]
    assert report["ignored"]["hidden"] == bad_corpus.HIDDEN
    assert report["ignored"]["repeated_folders"] == bad_corpus.REPEATED_FOLDERS
    assert report["empty_class_folders"] == bad_corpus.EMPTY_CLASS_FOLDERS
    assert report["classes"]["birds"] == {"used": {}, "rejected": 0}
    # Even with every threshold relaxed, a class with no training image stops the run.
    assert report["gate"]["failures"] == ["class 'birds' has 0 usable training images, fewer than 1"]


def test_accepted_examples_decode_and_conversions_are_applied(corpus, tmp_path):
    root, _, examples = corpus
    validated, _ = run_validator(examples, tmp_path, RELAXED)
    used = validated_paths(validated)
    for path, example in used.items():
        image = tf.io.decode_image(example.features.feature[features.IMAGE].bytes_list.value[0], channels=3,
                                   expand_animations=False)
        height = example.features.feature[features.HEIGHT].int64_list.value[0]
        width = example.features.feature[features.WIDTH].int64_list.value[0]
        assert image.shape[:2] == (height, width), path
    # EXIF orientation 6 turns a 64x40 landscape into 40x64 upright pixels.
    rotated = used["cats/rotated.jpg"].features.feature
    assert (rotated[features.WIDTH].int64_list.value[0], rotated[features.HEIGHT].int64_list.value[0]) == (40, 64)
    cmyk = used["cats/cmyk.jpg"].features.feature
    assert cmyk[features.IMAGE].bytes_list.value[0] != (root / "cats" / "cmyk.jpg").read_bytes()
    assert cmyk[features.CHANNELS].int64_list.value[0] == 3
    # Untouched files keep their exact bytes; the label of a nested file is its class folder.
    assert used["cats/UPPER.JPG"].features.feature[features.IMAGE].bytes_list.value[0] == (
        root / "cats" / "UPPER.JPG").read_bytes()
    assert used["cats/2019/nested.jpg"].features.feature[features.LABEL].bytes_list.value[0] == b"cats"


def test_labels_outside_the_schema_domain_are_rejected(tmp_path):
    files = {"cats/a.jpg": encode_image((1, 2, 3)), "dogs/b.jpg": encode_image((200, 2, 3))}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out", RELAXED, label_domain=["cats"])
    assert {r["path"]: r["reason"] for r in report["rejected"]} == {"dogs/b.jpg": checks.LABEL_NOT_IN_SCHEMA}


def test_label_domain_is_read_from_inline_or_named_domains():
    schema = schema_pb2.Schema()
    schema.feature.add(name=features.LABEL, type=schema_pb2.BYTES, domain="labels")
    schema.string_domain.add(name="labels", value=["a", "b"])
    assert label_domain_from_schema(schema) == {"a", "b"}
    assert label_domain_from_schema(schema_pb2.Schema()) is None


@pytest.mark.skipif(not HYMENOPTERA.is_dir(), reason="shared hymenoptera dataset not present")
def test_hymenoptera_validates_with_its_gif_handled(tmp_path):
    examples = run_ingest(HYMENOPTERA, tmp_path / "ingested", return_artifact=True)
    validated, report = run_validator(examples, tmp_path / "out")
    counts = report["counts"]
    assert report["gate"]["passed"] is True
    assert counts["files_seen"] == counts["examples_used"] + counts["files_rejected"] == 398
    used = validated_paths(validated)
    gif = used["train/ants/imageNotFound.gif"].features.feature
    assert gif[features.FORMAT].bytes_list.value[0] == b"gif"
    assert "train/ants/ant photos.jpg" in used


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_file_without_read_permission_is_reported_unreadable(tmp_path):
    files = {"cats/a.jpg": encode_image((1, 2, 3)), "cats/locked.jpg": encode_image((9, 2, 3)),
             "dogs/b.jpg": encode_image((200, 2, 3))}
    data_dir = write_image_folder(tmp_path / "data", files)
    os.chmod(data_dir / "cats" / "locked.jpg", 0)
    examples = run_ingest(data_dir, tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert {r["path"]: r["reason"] for r in report["rejected"]} == {"cats/locked.jpg": checks.UNREADABLE}
