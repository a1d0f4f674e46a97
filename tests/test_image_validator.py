"""The image validator: per-file checks, its executor's Do() on a bad-input corpus, the gate."""

import dataclasses
import json
import os

import pytest
import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2

from components import features, names
from components.image_validator import checks, near_duplicates
from components.image_validator import report as report_lib
from components.image_validator.component import ImageValidator
from components.image_validator.executor import (
    label_domain_from_schema,
)
from components.image_validator.gate import ImageValidationError, check_gate
from components.image_validator.policy import ValidationPolicy
from tests import bad_corpus
from tests.helpers import HYMENOPTERA, encode_image, run_ingest, run_validator, write_image_folder

DEFAULT = ValidationPolicy()
RELAXED = ValidationPolicy(min_examples_per_class=1, max_rejected_fraction=1.0)


def validated_paths(validated):
    paths = {}
    for split in json.loads(validated.split_names):
        files = tf.io.gfile.glob(os.path.join(validated.uri, f"Split-{split}", "*"))
        assert files and all(f.endswith(".tfrecord") for f in files)  # written uncompressed
        for record in tf.data.TFRecordDataset(files):
            example = tf.train.Example.FromString(record.numpy())
            paths[example.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode()] = example
    return paths


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "data"
    root.mkdir()
    expected = bad_corpus.make_bad_corpus(root)
    examples = run_ingest(root, tmp_path_factory.mktemp("ingested"), return_artifact=True)
    return root, expected, examples


def test_corpus_has_at_least_15_kinds_of_trouble(corpus):
    _, expected, _ = corpus
    kinds = {e.reason for e in expected.values() if e.reason} | {f for e in expected.values() for f in e.flags}
    assert len(kinds) >= 15


def test_gate_stops_on_the_bad_corpus_naming_the_report(corpus, tmp_path):
    _, expected, examples = corpus
    _, report = run_validator(examples, tmp_path)
    with pytest.raises(ImageValidationError) as error:
        check_gate(str(tmp_path / "report"))
    message = str(error.value)
    assert os.path.join(str(tmp_path / "report"), report_lib.REPORT_MD) in message
    assert "class 'birds' has 0 usable training images" in message
    assert "were rejected, more than the allowed 20.0%" in message
    # The reports are complete when the gate fails.
    assert report["gate"]["passed"] is False
    assert report["counts"]["files_seen"] == len(expected)
    markdown = (tmp_path / "report" / report_lib.REPORT_MD).read_text(encoding="utf-8")
    assert "Gate: FAILED" in markdown and "cats/truncated.jpg" in markdown


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


def test_the_gate_passes_a_clean_folder(tmp_path):
    files = {f"{label}/{n}.jpg": encode_image((40 * n, 9 * n, 200 if label == "b" else 5)) for n in range(6)
             for label in ("a", "b")}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out")
    assert report["gate"] == {"passed": True, "failures": [], "rejected_fraction": 0.0}
    check_gate(str(tmp_path / "out" / "report"))  # no exception


def test_a_split_left_empty_stops_the_run(tmp_path):
    files = {"train/a/1.jpg": encode_image((1, 2, 3)), "train/b/2.jpg": encode_image((200, 2, 3)),
             "val/a/3.jpg": b"not an image at all, just text"}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert report["gate"]["failures"] == ["split 'eval' has no usable images"]


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


def test_copies_across_splits_are_leakage(tmp_path):
    shared = encode_image((10, 200, 10), size=(40, 40))
    files = {"train/a/one.jpg": shared, "val/a/one_again.jpg": shared,
             "train/a/x.jpg": encode_image((1, 2, 3)), "train/b/y.jpg": encode_image((200, 2, 3)),
             "val/b/z.png": encode_image((9, 9, 250), image_format="PNG")}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    validated, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert {r["path"]: r["reason"] for r in report["rejected"]} == {"val/a/one_again.jpg": checks.SPLIT_LEAKAGE}
    assert "train/a/one.jpg" in validated_paths(validated)


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


def test_component_rejects_a_bad_policy_argument():
    with pytest.raises(ValueError, match="ValidationPolicy"):
        ImageValidator(examples=None, policy={"min_width": 3})


def test_policy_validates_its_values():
    with pytest.raises(ValueError, match="max_rejected_fraction"):
        ValidationPolicy(max_rejected_fraction=1.5)
    with pytest.raises(ValueError, match="Minimum image sides"):
        ValidationPolicy(min_width=100, max_width=50)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_a_file_without_read_permission_is_reported_unreadable(tmp_path):
    files = {"cats/a.jpg": encode_image((1, 2, 3)), "cats/locked.jpg": encode_image((9, 2, 3)),
             "dogs/b.jpg": encode_image((200, 2, 3))}
    data_dir = write_image_folder(tmp_path / "data", files)
    os.chmod(data_dir / "cats" / "locked.jpg", 0)
    examples = run_ingest(data_dir, tmp_path / "ingested", return_artifact=True)
    _, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert {r["path"]: r["reason"] for r in report["rejected"]} == {"cats/locked.jpg": checks.UNREADABLE}


def _report_texts(report_dir):
    return {name: (report_dir / name).read_text(encoding="utf-8")
            for name in (report_lib.REPORT_JSON, report_lib.REPORT_MD, "files.jsonl")}


def test_odd_names_are_counted_and_every_report_names_them_escaped(corpus, tmp_path):
    root, expected, examples = corpus
    _, report = run_validator(examples, tmp_path, RELAXED)
    texts = _report_texts(tmp_path / "report")
    lines = texts["files.jsonl"].splitlines()
    outside = report["counts"]["rejected_by_reason"][checks.OUTSIDE_CLASS_FOLDER]  # listed, not ingested
    assert len(lines) == report["counts"]["files_seen"] - outside
    odd = [path for path in expected if "\\" in path or "|" in path or "\u0432" in path or path.startswith("cats/-")]
    assert len(odd) >= 12
    recorded = {json.loads(line)["path"] for line in lines}
    for path in odd:
        assert path in recorded, path
        # The escaped form maps back to the real file.
        assert os.path.lexists(os.path.join(str(root), names.os_path(path))), path
    markdown = texts[report_lib.REPORT_MD]
    assert "`` cats/pipe\\|and`tick`.jpg ``" not in markdown  # fenced with more backticks than the name holds
    assert "\u0432\u0438\u0448\u043d\u044f class" in markdown


def test_no_report_quotes_a_file_or_a_link_target(corpus, tmp_path):
    _, _, examples = corpus
    _, report = run_validator(examples, tmp_path, RELAXED)
    for name, text in _report_texts(tmp_path / "report").items():
        assert "BEGIN FAKE" not in text and "secret" not in text and "these are my notes" not in text, name
    rejected = {r["path"]: r["detail"] for r in report["rejected"]}
    assert rejected["cats/key.jpg"].startswith("detected as a PEM key or certificate; ")
    assert "sha256 " in rejected["cats/notes.jpg"] and "detected as text" in rejected["cats/notes.jpg"]
    assert rejected["dogs/key_link.jpg"] == features.OUTSIDE_LINK_ERROR


def test_links_leaving_the_data_folder_are_read_when_the_policy_allows(tmp_path):
    data = write_image_folder(tmp_path / "data", {f"{c}/{n}.jpg": encode_image((40 * n, 90, 200 if c == "b" else 5))
                                                  for n in range(4) for c in ("a", "b")})
    outside = write_image_folder(tmp_path / "outside", {"x.jpg": encode_image((1, 250, 1), size=(64, 48))})
    os.symlink(outside / "x.jpg", data / "a" / "linked.jpg")
    refused = {e.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode(): e
               for split in run_ingest(data, tmp_path / "refused").values() for e in split}
    assert refused["a/linked.jpg"].features.feature[features.IMAGE].bytes_list.value[0] == b""
    followed = {e.features.feature[features.RELATIVE_PATH].bytes_list.value[0].decode(): e
                for split in run_ingest(data, tmp_path / "followed", follow_outside_links=True).values()
                for e in split}
    linked = followed["a/linked.jpg"].features.feature[features.IMAGE].bytes_list.value[0]
    assert linked == (outside / "x.jpg").read_bytes()


@pytest.fixture(scope="module")
def near_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("near") / "data"
    expected = bad_corpus.make_near_duplicate_corpus(root)
    examples = run_ingest(root, tmp_path_factory.mktemp("near_ingested"), return_artifact=True)
    return expected, examples


def test_near_copies_get_their_verdicts_and_distinct_photos_none(near_corpus, tmp_path):
    expected, examples = near_corpus
    validated, report = run_validator(examples, tmp_path, RELAXED)
    rejected = {r["path"]: r["reason"] for r in report["rejected"]}
    flagged = {r["path"]: tuple(r["flags"]) for r in report["flagged"]}
    used = validated_paths(validated)
    for path, verdict in expected.items():
        assert rejected.get(path) == verdict.reason, path
        assert flagged.get(path, ()) == verdict.flags, path
        assert (path in used) == (verdict.reason is None), path
    groups = report["copy_groups"]
    assert sorted(g["kind"] for g in groups) == ["duplicate", "duplicate", "label conflict", "leakage", "leakage"]
    assert not any("distinct" in m["path"] for g in groups for m in g["members"])
    # Each member has its thumbnail, shown side by side in the Markdown report.
    markdown = (tmp_path / "report" / report_lib.REPORT_MD).read_text(encoding="utf-8")
    for group in groups:
        for member in group["members"]:
            assert (tmp_path / "report" / member["thumbnail"]).stat().st_size > 0
            assert f"]({member['thumbnail']})" in markdown


def test_near_copy_handling_follows_the_policy(near_corpus, tmp_path):
    _, examples = near_corpus
    policy = dataclasses.replace(RELAXED, near_duplicate_leakage="flag", near_duplicate_in_class="reject")
    _, report = run_validator(examples, tmp_path / "flag", policy)
    rejected = {r["path"]: r["reason"] for r in report["rejected"]}
    flagged = {r["path"]: r["flags"] for r in report["flagged"]}
    assert flagged["val/bees/b_half.jpg"] == [checks.NEAR_DUPLICATE_LEAKAGE]
    assert rejected["train/ants/a_quality60.jpg"] == checks.NEAR_DUPLICATE_IN_CLASS
    # Off: only exact copies are found.
    _, report = run_validator(examples, tmp_path / "off", dataclasses.replace(RELAXED, near_duplicates=False))
    assert [g["kind"] for g in report["copy_groups"]] == ["leakage"]
