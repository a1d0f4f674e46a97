"""Versioned, atomic pushes into a TF Serving model directory.

    <serving_base>/<model_name>/<version>/   (integer versions, always increasing)
    <serving_base>/<model_name>/push_manifest.json
    <serving_base>/models.config             (every model under <serving_base>)

A new version is copied into a staging directory whose name is not an integer
(TF Serving ignores it), smoke-tested there, and renamed into place: on a POSIX
filesystem the rename is atomic, so a server sees the whole version or none of
it.  A push killed part way leaves only a staging directory, removed by the next
push.  Versions are one more than the highest ever pushed (the manifest keeps
it, since old versions get pruned), under an exclusive lock, so two pushes in
the same second get two versions.

On a local filesystem each file of a version is a hard link to the trained
model's own file where the two share a device (no file of a SavedModel is ever
written again, so the two cannot drift apart), and a copy otherwise: a push
then costs no disk, and deleting the pipeline's artifacts leaves the served
version whole.

Object stores (``gs://``, ``s3://``) have no atomic rename: there every file but
``saved_model.pb`` is copied first and ``saved_model.pb`` last, the marker TF
Serving waits for, as TFX's own Pusher does.
"""

import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Optional

import tensorflow as tf
from absl import logging
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

STAGING_PREFIX = ".staging-"
MANIFEST_FILE = "push_manifest.json"
LOCK_FILE = ".push.lock"
SAVED_MODEL_FILE = "saved_model.pb"
MODELS_CONFIG_FILE = "models.config"


class PushError(RuntimeError):
    """The model could not be pushed; nothing new is visible to the server."""


@dataclasses.dataclass(frozen=True)
class PushResult:
    version: int
    path: str
    already_serving: bool  # the same model was already the latest version: nothing copied
    removed_versions: list[int]


def is_local(path: str) -> bool:
    return "://" not in path


def versions(model_dir: str) -> list[int]:
    """The integer version directories TF Serving would load, in ascending order."""
    if not tf.io.gfile.isdir(model_dir):
        return []
    return sorted(int(name.rstrip("/")) for name in tf.io.gfile.listdir(model_dir) if name.rstrip("/").isdigit())


def read_manifest(model_dir: str) -> dict:
    path = os.path.join(model_dir, MANIFEST_FILE)
    if not tf.io.gfile.exists(path):
        return {"last_version": 0, "versions": {}}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_atomically(path: str, text: str) -> None:
    """Writes ``text`` to a temporary name beside ``path``, then renames it: a reader sees the old
    file or the new one, never half of one."""
    temporary = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(temporary, "w") as f:
        f.write(text)
    tf.io.gfile.rename(temporary, path, overwrite=True)


@contextlib.contextmanager
def _exclusive(model_dir: str):
    """One push at a time per model directory (released even if the process is killed)."""
    if not is_local(model_dir):
        yield
        return
    with open(os.path.join(model_dir, LOCK_FILE), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def copy_model(source: str, destination: str) -> None:
    """Copies (or links, ``_copy_file``) a SavedModel directory, ``saved_model.pb`` last."""
    last = None
    for directory, _, files in tf.io.gfile.walk(source):
        target_dir = os.path.join(destination, os.path.relpath(directory, source))
        tf.io.gfile.makedirs(target_dir)
        for name in files:
            if directory.rstrip("/") == source.rstrip("/") and name == SAVED_MODEL_FILE:
                last = (os.path.join(directory, name), os.path.join(target_dir, name))
                continue
            _copy_file(os.path.join(directory, name), os.path.join(target_dir, name))
    if last is None:
        raise PushError(f"{source} is not a SavedModel: it has no {SAVED_MODEL_FILE}.")
    _copy_file(*last)


def _copy_file(source: str, destination: str) -> None:
    """A hard link where both are local on one device, else a copy."""
    if is_local(source) and is_local(destination):
        try:
            if os.path.lexists(destination):
                os.remove(destination)
            os.link(source, destination)
            return
        except OSError:  # another device, or a filesystem without hard links
            pass
    tf.io.gfile.copy(source, destination, overwrite=True)


def _remove_stale_staging(model_dir: str) -> None:
    for name in tf.io.gfile.listdir(model_dir):
        if name.rstrip("/").startswith(STAGING_PREFIX):
            logging.info("Removing %s, left by an interrupted push.", name)
            tf.io.gfile.rmtree(os.path.join(model_dir, name.rstrip("/")))


def _prune(model_dir: str, keep: int) -> list[int]:
    """Removes all but the newest ``keep`` (at least 1) versions; each disappears in one rename first."""
    removed = []
    for version in versions(model_dir)[:-max(keep, 1)]:
        path = os.path.join(model_dir, str(version))
        doomed = os.path.join(model_dir, f"{STAGING_PREFIX}removed-{version}")
        if is_local(model_dir):
            os.rename(path, doomed)
            shutil.rmtree(doomed)
        else:
            tf.io.gfile.rmtree(path)
        removed.append(version)
    return removed


def push(
    source_model: str,
    model_dir: str,
    source_id: str,
    keep_versions: int,
    smoke_test: Callable[[str], None],
) -> PushResult:
    """Pushes the SavedModel at ``source_model`` as the next version under ``model_dir``.

    ``source_id`` names the model being pushed (its artifact URI): when the latest
    version came from the same model, nothing is copied.  ``smoke_test(path)``
    must raise if the staged copy does not load and answer; the version then
    never becomes visible.
    """
    tf.io.gfile.makedirs(model_dir)
    with _exclusive(model_dir):
        manifest = read_manifest(model_dir)
        existing = versions(model_dir)
        if is_local(model_dir):
            _remove_stale_staging(model_dir)
        if existing and manifest["versions"].get(str(existing[-1]), {}).get("source") == source_id:
            logging.info("%s is already serving as version %d: nothing to push.", source_id, existing[-1])
            return PushResult(existing[-1], os.path.join(model_dir, str(existing[-1])), True, [])

        version = max([manifest["last_version"], *existing]) + 1
        final = os.path.join(model_dir, str(version))
        if is_local(model_dir):
            staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=model_dir)
            try:
                copy_model(source_model, staging)
                _smoke(smoke_test, staging)
                os.rename(staging, final)  # atomic: the version appears whole
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        else:
            staging = os.path.join(model_dir, f"{STAGING_PREFIX}{version}")
            copy_model(source_model, staging)
            _smoke(smoke_test, staging)
            copy_model(staging, final)
            tf.io.gfile.rmtree(staging)

        manifest["last_version"] = version
        manifest["versions"][str(version)] = {
            "source": source_id,
            "pushed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        removed = _prune(model_dir, keep_versions)
        for old in removed:
            manifest["versions"].pop(str(old), None)
        write_atomically(os.path.join(model_dir, MANIFEST_FILE), json.dumps(manifest, indent=1))
    logging.info("Pushed %s as version %d (%s); removed old versions %s.", source_id, version, final, removed)
    return PushResult(version, final, False, removed)


def _smoke(smoke_test: Callable[[str], None], staged: str) -> None:
    try:
        smoke_test(staged)
    except Exception as error:  # any failure stops the push
        raise PushError(f"Smoke test of the staged model failed, so it was not pushed: {error}") from error


def write_models_config(serving_base: str, server_base_path: Optional[str] = None) -> str:
    """Writes ``<serving_base>/models.config`` (TF Serving's ModelServerConfig) for every
    model directory with versions, each serving its latest version.

    ``server_base_path`` is where the server sees ``serving_base`` (``/models``
    inside the TF Serving container, say); by default the real path.
    """
    base_path = server_base_path or (os.path.abspath(serving_base) if is_local(serving_base) else serving_base)
    config = model_server_config_pb2.ModelServerConfig()
    for name in sorted(n.rstrip("/") for n in tf.io.gfile.listdir(serving_base)):
        if tf.io.gfile.isdir(os.path.join(serving_base, name)) and versions(os.path.join(serving_base, name)):
            entry = config.model_config_list.config.add(
                name=name, base_path=f"{base_path.rstrip('/')}/{name}", model_platform="tensorflow")
            entry.model_version_policy.latest.num_versions = 1
    path = os.path.join(serving_base, MODELS_CONFIG_FILE)
    write_atomically(path, text_format.MessageToString(config))
    return path
