"""The bad-input corpus, made and ingested once per test module that uses it."""

import pytest

from tests import bad_corpus
from tests.helpers import run_ingest


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus") / "data"
    root.mkdir()
    expected = bad_corpus.make_bad_corpus(root)
    examples = run_ingest(root, tmp_path_factory.mktemp("ingested"), return_artifact=True)
    return root, expected, examples
