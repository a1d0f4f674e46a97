"""Versioned, atomic pushes into a TF Serving model directory, and its models.config."""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from components.model_pusher import versioning
from tests.helpers import REPO_ROOT


def _no_smoke(path):
    assert os.path.exists(os.path.join(path, versioning.SAVED_MODEL_FILE))


def test_versions_always_increase_even_after_pruning(tmp_path, saved_model):
    model_dir = str(tmp_path / "serving" / "clf")
    pushed = [versioning.push(saved_model, model_dir, f"model-{n}", keep_versions=2, smoke_test=_no_smoke)
              for n in range(4)]
    assert [p.version for p in pushed] == [1, 2, 3, 4]  # all within the same second
    assert versioning.versions(model_dir) == [3, 4]
    assert pushed[2].removed_versions == [1] and pushed[3].removed_versions == [2]
    assert sorted(os.listdir(model_dir)) == sorted(["3", "4", versioning.LOCK_FILE, versioning.MANIFEST_FILE])
    # Every version holds the whole SavedModel.
    assert sorted(os.listdir(os.path.join(model_dir, "4"))) == sorted(os.listdir(saved_model))
    manifest = versioning.read_manifest(model_dir)
    assert manifest["last_version"] == 4 and set(manifest["versions"]) == {"3", "4"}
    assert manifest["versions"]["4"]["source"] == "model-3"


def test_the_model_already_serving_is_not_pushed_again(tmp_path, saved_model):
    model_dir = str(tmp_path / "clf")
    first = versioning.push(saved_model, model_dir, "run-1-model", keep_versions=3, smoke_test=_no_smoke)
    again = versioning.push(saved_model, model_dir, "run-1-model", keep_versions=3, smoke_test=_no_smoke)
    assert (first.version, first.already_serving) == (1, False)
    assert (again.version, again.already_serving) == (1, True)
    assert versioning.versions(model_dir) == [1]


def test_a_failed_smoke_test_leaves_nothing_visible(tmp_path, saved_model):
    model_dir = str(tmp_path / "clf")
    versioning.push(saved_model, model_dir, "good", keep_versions=3, smoke_test=_no_smoke)

    def broken(path):
        raise ValueError("no answer")

    with pytest.raises(versioning.PushError, match=r"Smoke test .* failed.*no answer"):
        versioning.push(saved_model, model_dir, "bad", keep_versions=3, smoke_test=broken)
    assert versioning.versions(model_dir) == [1]
    assert not [n for n in os.listdir(model_dir) if n.startswith(versioning.STAGING_PREFIX)]
    assert versioning.read_manifest(model_dir)["last_version"] == 1


_KILLED_PUSH = textwrap.dedent("""
    import sys, time
    from components.model_pusher import versioning
    source, model_dir, marker = sys.argv[1:4]
    real_copy = versioning._copy_file
    def slow_copy(src, dst):
        real_copy(src, dst)
        open(marker, "a").close()  # at least one file is in the staging directory
        time.sleep(0.5)
    versioning._copy_file = slow_copy
    versioning.push(source, model_dir, "killed", keep_versions=3, smoke_test=lambda path: None)
""")


@pytest.mark.subprocess
def test_a_push_killed_part_way_leaves_no_partial_version(tmp_path, saved_model):
    model_dir = str(tmp_path / "serving" / "clf")
    versioning.push(saved_model, model_dir, "before", keep_versions=3, smoke_test=_no_smoke)
    marker = tmp_path / "copying"
    process = subprocess.Popen([sys.executable, "-c", _KILLED_PUSH, saved_model, model_dir, str(marker)],
                               cwd=REPO_ROOT)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert process.poll() is None, "the push ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()

    staged = [n for n in os.listdir(model_dir) if n.startswith(versioning.STAGING_PREFIX)]
    assert staged, "the killed push should have been copying into a staging directory"
    assert versioning.versions(model_dir) == [1]  # what a server sees: only the complete version
    assert versioning.read_manifest(model_dir)["last_version"] == 1

    after = versioning.push(saved_model, model_dir, "after", keep_versions=3, smoke_test=_no_smoke)
    assert after.version == 2
    assert not [n for n in os.listdir(model_dir) if n.startswith(versioning.STAGING_PREFIX)]


def test_models_config_lists_every_served_model(tmp_path, saved_model):
    serving = tmp_path / "serving"
    for name in ("cats", "dogs"):
        versioning.push(saved_model, str(serving / name), name, keep_versions=1, smoke_test=_no_smoke)
    (serving / "empty").mkdir()
    path = versioning.write_models_config(str(serving))
    config = text_format.Parse(pathlib.Path(path).read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert set(entries) == {"cats", "dogs"}
    assert entries["cats"].base_path == str(serving / "cats") and entries["cats"].model_platform == "tensorflow"
    assert entries["dogs"].model_version_policy.latest.num_versions == 1
    in_container = versioning.write_models_config(str(serving), server_base_path="/models")
    config = text_format.Parse(pathlib.Path(in_container).read_text(), model_server_config_pb2.ModelServerConfig())
    assert [c.base_path for c in config.model_config_list.config] == ["/models/cats", "/models/dogs"]


def test_a_local_push_links_the_models_files_and_outlives_them(tmp_path, saved_model):
    source = tmp_path / "trained"
    shutil.copytree(saved_model, source)  # a model of this test's own, to delete after
    model_dir = tmp_path / "serving" / "clf"
    versioning.push(str(source), str(model_dir), "trained", keep_versions=3, smoke_test=_no_smoke)
    pushed = model_dir / "1" / versioning.SAVED_MODEL_FILE
    # The push costs no disk: the version's files are the trained model's, linked.
    assert pushed.stat().st_ino == (source / versioning.SAVED_MODEL_FILE).stat().st_ino
    assert pushed.stat().st_nlink == 2
    original = pushed.read_bytes()
    # Deleting the pipeline's artifacts leaves the served version whole.
    shutil.rmtree(source)
    assert pushed.read_bytes() == original and pushed.stat().st_nlink == 1
