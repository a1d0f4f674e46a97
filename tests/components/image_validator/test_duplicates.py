"""Copy decisions: exact copies across splits, and near-copies given their verdicts as the policy says."""

import dataclasses

import pytest

from components.image_validator import checks
from components.image_validator import report as report_lib
from tests import bad_corpus
from tests.components.image_validator.validated import RELAXED, validated_paths
from tests.helpers import encode_image, run_ingest, run_validator, write_image_folder


def test_copies_across_splits_are_leakage(tmp_path):
    shared = encode_image((10, 200, 10), size=(40, 40))
    files = {"train/a/one.jpg": shared, "val/a/one_again.jpg": shared,
             "train/a/x.jpg": encode_image((1, 2, 3)), "train/b/y.jpg": encode_image((200, 2, 3)),
             "val/b/z.png": encode_image((9, 9, 250), image_format="PNG")}
    examples = run_ingest(write_image_folder(tmp_path / "data", files), tmp_path / "ingested", return_artifact=True)
    validated, report = run_validator(examples, tmp_path / "out", RELAXED)
    assert {r["path"]: r["reason"] for r in report["rejected"]} == {"val/a/one_again.jpg": checks.SPLIT_LEAKAGE}
    assert "train/a/one.jpg" in validated_paths(validated)


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
