"""The validator's executor: its Do() on the bad-input corpus and on small folders, every
file's verdict, the conversions it applies and the schema's label domain."""

import logging
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.types import artifact_utils

from components import features, progress
from components.image_validator import checks, record_io
from components.image_validator.executor import (
    label_domain_from_schema,
)
from tests import bad_corpus
from tests.components.image_validator.validated import RELAXED, validated_paths
from tests.helpers import (
    HYMENOPTERA,
    encode_distinct_image,
    encode_image,
    run_ingest,
    run_validator,
    write_image_folder,
)


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


def _split_records(validated, split):
    pattern = os.path.join(artifact_utils.get_split_uri([validated], split), "*")
    return {path.rsplit("/", 1)[1]: [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(path)]
            for path in sorted(tf.io.gfile.glob(pattern))}


def _path(example):
    return example.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode()


def test_accepted_images_land_in_byte_sized_shards_in_the_seeds_order_and_progress_is_told(tmp_path, monkeypatch):
    files = {f"c{c}/{n:02d}.jpg": encode_distinct_image((60 * c, 90, 200 - 50 * c), seed=10 * c + n, size=(48, 40))
             for c in range(4) for n in range(15)}
    root = write_image_folder(tmp_path / "data", files)
    ingested = run_ingest(root, tmp_path / "ingested", return_artifact=True)
    # Shards of about 4 files' bytes: several per split.
    monkeypatch.setattr(record_io, "TARGET_SHARD_BYTES", 4 * max(len(data) for data in files.values()))
    events = []

    class Listen(logging.Handler):
        def emit(self, record):
            events.append(record.progress)

    listener = Listen()
    logging.getLogger(progress.LOGGER_NAME).addHandler(listener)
    try:
        validated, report = run_validator(ingested, tmp_path / "seed7", seed=7)
    finally:
        logging.getLogger(progress.LOGGER_NAME).removeHandler(listener)
    assert events[-1]["kind"] == "files" and events[-1]["done"] == events[-1]["total"] == len(files)

    train = _split_records(validated, "train")
    count = len(train)
    assert count >= 3 and sorted(train) == [record_io.shard_name("data", i, count) for i in range(count)]
    every = [_path(e) for shard in train.values() for e in shard] + [
        _path(e) for shard in _split_records(validated, "eval").values() for e in shard]
    assert sorted(every) == sorted(files) and report["counts"]["examples_used"] == len(files)
    # Each example sits in the shard, and at the rank, the seed and its path give: not in folder order.
    for name, examples in train.items():
        places = [record_io.placement(7, _path(e), count) for e in examples]
        assert {shard for shard, _ in places} == {int(name.split("-")[1])}
        assert [rank for _, rank in places] == sorted(rank for _, rank in places)
    in_order = [_path(e) for shard in train.values() for e in shard]
    assert in_order != sorted(in_order)
    # The same seed writes the same shards; another seed another order.
    again, _ = run_validator(ingested, tmp_path / "again", seed=7)
    assert {n: [_path(e) for e in s] for n, s in _split_records(again, "train").items()} == {
        n: [_path(e) for e in s] for n, s in train.items()}
    other, _ = run_validator(ingested, tmp_path / "seed8", seed=8)
    assert [_path(e) for s in _split_records(other, "train").values() for e in s] != in_order
