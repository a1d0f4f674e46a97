"""How a data folder is read: its split folders, its class folders, and which
files are ingested (the listing policy).

Two layouts:

* ``<root>/<class>/<file>``: one input, split by the ingest step's hash.
* ``<root>/<split>/<class>/<file>``: the folders' own splits are kept.
  ``train`` is the training split; ``val``, ``validation`` or ``eval`` becomes
  the ``eval`` split (``test`` does when there is none of those); a ``test``
  folder beside a validation folder is kept as the ``test`` split.

The listing policy:

* A split's root holds one folder per class; every file below a class folder,
  at any depth, is an image of that class (nested folders are walked).
* Files are judged by their content, never their extension: ``.JPG``, ``.jpeg``
  or no extension at all are read alike, and a non-image reaches the
  validation report as one.
* Hidden files and folders (a name starting with ``.``, such as ``.DS_Store``,
  ``._photo.jpg`` or ``.git``) are not images: they are left out and listed.
* Files lying directly in the split root, outside any class folder, have no
  label: they are listed as such, not ingested.
* Symbolic links that stay inside the data folder are followed, to files and
  to folders; a folder reached a second time (a link loop, two links to one
  folder, a link into another class or back up to the root) is walked once
  only, under its own class, and the repeat is listed.  A link whose target
  is missing is ingested as an unreadable file, so it reaches the report.
* A link whose target lies outside the data folder is not followed (unless
  ``follow_outside_links``): it is listed in ``outside_links`` and ingested
  as a file that was not read, so the report names it without ever opening
  what it points to (a key file, a home folder).
* Class folders with no files are listed, so the validator can report them.

Every path is relative to the data root and escaped (``components/names.py``):
any byte string a folder holds, newlines or invalid UTF-8 included, becomes one
printable line that maps back to the real name.

Listing uses ``os`` for local paths (to follow links safely) and
``tf.io.gfile`` for other filesystems (``gs://``, ``s3://``, which have none).
"""

import dataclasses
import hashlib
import os
import posixpath
from typing import Optional

import tensorflow as tf

from components import names, splits

# Every split pattern is "[<split folder>/]*/*": the driver and executor read the folder from it.
PATTERN_SUFFIX = "*/*"


def split_folder_of(split_pattern: str) -> str:
    """``train/*/*`` -> ``train``; ``*/*`` -> "" (the data root is the split)."""
    if not split_pattern.endswith(PATTERN_SUFFIX):
        raise ValueError(f"Unsupported split pattern {split_pattern!r}: expected '[<split>/]{PATTERN_SUFFIX}'.")
    return split_pattern[: -len(PATTERN_SUFFIX)].rstrip("/")


def class_of(relative_path: str, split_folder: str) -> str:
    """The class of a listed file: the first folder below its split's folder
    (``train/ants/a.jpg`` in split ``train`` -> ``ants``)."""
    depth = len(split_folder.split("/")) if split_folder else 0
    return relative_path.split("/")[depth]


@dataclasses.dataclass
class SplitListing:
    """What one input split's folder holds. Paths are relative to the data root."""

    files: list[str] = dataclasses.field(default_factory=list)
    class_folders: list[str] = dataclasses.field(default_factory=list)
    empty_class_folders: list[str] = dataclasses.field(default_factory=list)
    outside_class_folders: list[str] = dataclasses.field(default_factory=list)
    hidden: list[str] = dataclasses.field(default_factory=list)
    repeated_folders: list[str] = dataclasses.field(default_factory=list)
    # Links (to files or folders) below a class folder whose target lies outside the data folder.
    outside_links: list[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return dataclasses.asdict(self)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_remote(path: str) -> bool:
    return "://" in path


def _inside(path: str, real_root: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), real_root]) == real_root


def _walk(top: str, seen: set[str], real_root: str, follow_outside_links: bool):
    """Yields (folder, subfolder names, file names, repeated folders, outside links) below ``top``.

    Local walks follow symbolic links but never enter a real folder in ``seen``
    (which they extend), so each folder is walked once, under one class; nor a
    link leaving ``real_root`` unless ``follow_outside_links``.
    """
    if _is_remote(top):
        for folder, subfolders, file_names in tf.io.gfile.walk(top):
            yield folder, subfolders, file_names, [], []
        return
    for folder, subfolders, file_names in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if folder != top and real in seen:  # reached through a link: walked elsewhere
            subfolders[:] = []
            yield folder, [], [], [folder], []
            continue
        seen.add(real)
        outside = []
        if not follow_outside_links:
            for entry in subfolders + file_names:
                path = os.path.join(folder, entry)
                if os.path.islink(path) and not _inside(path, real_root):
                    outside.append(path)
            outside_names = {os.path.basename(p) for p in outside}
            subfolders[:] = [n for n in subfolders if n not in outside_names]
            file_names = [n for n in file_names if n not in outside_names]
        yield folder, subfolders, file_names, [], outside


def list_split(data_root: str, split_folder: str, follow_outside_links: bool = False) -> SplitListing:
    """Lists ``<data_root>/<split_folder>`` (``split_folder`` may be "") by the policy above."""
    root = data_root.rstrip("/")
    split_root = posixpath.join(root, split_folder) if split_folder else root
    listing = SplitListing()
    real_root = "" if _is_remote(root) else os.path.realpath(root)

    def relative(path: str) -> str:
        name = os.path.relpath(path, root).replace(os.sep, "/") if not _is_remote(path) else path[len(root) + 1:]
        return names.escape(name)

    class_paths = []
    for name in sorted(tf.io.gfile.listdir(split_root) if _is_remote(split_root) else os.listdir(split_root)):
        name = name.rstrip("/")
        path = posixpath.join(split_root, name)
        if _is_hidden(name):
            listing.hidden.append(relative(path))
        elif not tf.io.gfile.isdir(path) if _is_remote(path) else not os.path.isdir(path):
            listing.outside_class_folders.append(relative(path))
        elif real_root and not follow_outside_links and os.path.islink(path) and not _inside(path, real_root):
            listing.outside_links.append(relative(path))  # a class folder that is a link out of the data
        else:
            class_paths.append(path)
    # The split root and every class folder belong to themselves: a link from one
    # class into another (or back up) is not followed.
    seen = set() if _is_remote(split_root) else {os.path.realpath(p) for p in [split_root] + class_paths}
    for path in class_paths:
        listing.class_folders.append(relative(path))
        found_files = False
        for folder, subfolders, file_names, repeated, outside in _walk(path, seen, real_root, follow_outside_links):
            listing.repeated_folders.extend(relative(p) for p in repeated)
            listing.outside_links.extend(relative(p) for p in outside)
            found_files = found_files or bool(outside)
            for hidden in sorted(n for n in subfolders if _is_hidden(n)):
                listing.hidden.append(relative(posixpath.join(folder, hidden)))
            subfolders[:] = sorted(n.rstrip("/") for n in subfolders if not _is_hidden(n))
            for file_name in sorted(file_names):
                file_path = posixpath.join(folder, file_name)
                if _is_hidden(file_name):
                    listing.hidden.append(relative(file_path))
                else:
                    listing.files.append(relative(file_path))
                    found_files = True
        if not found_files:
            listing.empty_class_folders.append(relative(path))
    listing.outside_links.sort()
    return listing


def unlabelled(listing: SplitListing) -> SplitListing:
    """The listing of a folder of unlabelled images: files in the root and below any folder
    alike (there are no class folders to leave out or find empty)."""
    return dataclasses.replace(
        listing, files=sorted(listing.files + listing.outside_class_folders), class_folders=[],
        empty_class_folders=[], outside_class_folders=[],
    )


def size_and_mtime(path: str) -> tuple[int, int]:
    """A listed file's size and modification time (of the link itself when its target is missing)."""
    if _is_remote(path):
        stat = tf.io.gfile.stat(path)
        return stat.length, stat.mtime_nsec
    try:
        stat = os.stat(path)
    except OSError:  # a dangling link: describe the link itself
        stat = os.lstat(path)
    return stat.st_size, stat.st_mtime_ns


def fingerprint(data_root: str, split_folder: str) -> str:
    """Changes whenever a listed file is added, removed, renamed or modified.

    Covers nested folders and tolerates dangling links, unlike a glob over
    ``*/*``; TFX compares it between runs to decide whether ingest can be cached.
    """
    listing = list_split(data_root, split_folder)
    digest = hashlib.sha256()
    root = data_root.rstrip("/")
    for relative_path in sorted(listing.files + listing.outside_class_folders + listing.outside_links):
        size, mtime = size_and_mtime(posixpath.join(root, names.os_path(relative_path)))
        digest.update(f"{relative_path}\0{size}\0{mtime}\n".encode())
    for folder in listing.empty_class_folders:
        digest.update(f"{folder}/\n".encode())
    return f"split:{split_folder or '.'},num_files:{len(listing.files)},sha256:{digest.hexdigest()}"


# Folder names on disk (the split names they become are in components/splits.py).
_TRAIN_FOLDER, _TEST_FOLDER = "train", "test"
_EVAL_FOLDERS = ("val", "validation", "eval")
_SPLIT_FOLDERS = frozenset((_TRAIN_FOLDER, _TEST_FOLDER, *_EVAL_FOLDERS))


def _subfolders(path: str) -> list[str]:
    if "://" not in path:  # os, not tf.io.gfile: a local name need not be UTF-8
        return sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)) and not n.startswith("."))
    return sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(path)
        if tf.io.gfile.isdir(posixpath.join(path, name)) and not name.startswith(".")
    )


def detect_split_folders(data_dir: str) -> Optional[dict[str, str]]:
    """Maps TFX split name to folder when ``data_dir`` holds split folders, else None.

    Raises ValueError for a folder that is missing, empty, or mixes split folders
    with class folders.
    """
    if not tf.io.gfile.isdir(data_dir):
        raise ValueError(f"Data directory {data_dir!r} does not exist or is not a directory.")
    folders = _subfolders(data_dir)
    if not folders:
        raise ValueError(
            f"Data directory {data_dir!r} has no sub-folders: expected "
            "<data_dir>/<class>/<image> or <data_dir>/<split>/<class>/<image>."
        )
    split_like = [f for f in folders if f in _SPLIT_FOLDERS]
    if not split_like or (len(split_like) == 1 and len(folders) > 1):
        return None  # class folders; a single class named like a split is still a class
    if len(split_like) != len(folders):
        raise ValueError(
            f"Data directory {data_dir!r} mixes split folders {split_like} with other "
            f"folders {sorted(set(folders) - set(split_like))}; use either "
            "<split>/<class>/<image> or <class>/<image>."
        )
    if _TRAIN_FOLDER not in folders:
        raise ValueError(f"Data directory {data_dir!r} has split folders {folders} but no 'train'.")
    eval_folder = next((f for f in _EVAL_FOLDERS if f in folders), None)
    found = {splits.TRAIN: _TRAIN_FOLDER}
    if eval_folder:
        found[splits.EVAL] = eval_folder
        if _TEST_FOLDER in folders:
            found[splits.TEST] = _TEST_FOLDER
    elif _TEST_FOLDER in folders:
        found[splits.EVAL] = _TEST_FOLDER
    else:
        raise ValueError(
            f"Data directory {data_dir!r} has a 'train' folder but no evaluation folder "
            f"(one of {', '.join((*_EVAL_FOLDERS, _TEST_FOLDER))})."
        )
    return found
