"""The validator's reports: every odd name counted and escaped, no file's content quoted."""

import json
import os

from components import features, names
from components.image_validator import checks
from components.image_validator import report as report_lib
from tests.components.image_validator.validated import RELAXED
from tests.helpers import run_validator


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
