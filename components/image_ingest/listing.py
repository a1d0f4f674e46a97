"""Which files under a data folder are ingested: the listing policy.

* A split's root holds one folder per class; every file below a class folder,
  at any depth, is an image of that class (nested folders are walked).
* Files are judged by their content, never their extension: ``.JPG``, ``.jpeg``
  or no extension at all are read alike, and a non-image reaches the
  validation report as one.
* Hidden files and folders (a name starting with ``.``, such as ``.DS_Store``,
  ``._photo.jpg`` or ``.git``) are not images: they are left out and listed.
* Files lying directly in the split root, outside any class folder, have no
  label: they are listed as such, not ingested.
* Symbolic links are followed, to files and to folders; a folder reached a
  second time (a link loop, two links to one folder, a link into another class
  or back up to the root) is walked once only, under its own class, and the
  repeat is listed.  A link whose target is missing is ingested as an
  unreadable file, so it reaches the report.
* Class folders with no files are listed, so the validator can report them.

Listing uses ``os`` for local paths (to follow links safely) and
``tf.io.gfile`` for other filesystems (``gs://``, ``s3://``, which have none).
"""

import dataclasses
import hashlib
import os
import posixpath
from typing import Dict, List

import tensorflow as tf

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

    files: List[str] = dataclasses.field(default_factory=list)
    class_folders: List[str] = dataclasses.field(default_factory=list)
    empty_class_folders: List[str] = dataclasses.field(default_factory=list)
    outside_class_folders: List[str] = dataclasses.field(default_factory=list)
    hidden: List[str] = dataclasses.field(default_factory=list)
    repeated_folders: List[str] = dataclasses.field(default_factory=list)

    def to_json(self) -> Dict[str, List[str]]:
        return dataclasses.asdict(self)


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _is_remote(path: str) -> bool:
    return "://" in path


def _walk(top: str, seen: set):
    """Yields (folder, subfolder names, file names, repeated folder paths) below ``top``.

    Local walks follow symbolic links but never enter a real folder in ``seen``
    (which they extend), so each folder is walked once, under one class.
    """
    if _is_remote(top):
        for folder, subfolders, names in tf.io.gfile.walk(top):
            yield folder, subfolders, names, []
        return
    for folder, subfolders, names in os.walk(top, followlinks=True):
        real = os.path.realpath(folder)
        if folder != top and real in seen:  # reached through a link: walked elsewhere
            subfolders[:] = []
            yield folder, [], [], [folder]
            continue
        seen.add(real)
        yield folder, subfolders, names, []


def list_split(data_root: str, split_folder: str) -> SplitListing:
    """Lists ``<data_root>/<split_folder>`` (``split_folder`` may be "") by the policy above."""
    root = data_root.rstrip("/")
    split_root = posixpath.join(root, split_folder) if split_folder else root
    listing = SplitListing()

    def relative(path: str) -> str:
        return os.path.relpath(path, root).replace(os.sep, "/") if not _is_remote(path) else path[len(root) + 1:]

    class_paths = []
    for name in sorted(tf.io.gfile.listdir(split_root)):
        name = name.rstrip("/")
        path = posixpath.join(split_root, name)
        if _is_hidden(name):
            listing.hidden.append(relative(path))
        elif not tf.io.gfile.isdir(path):
            listing.outside_class_folders.append(relative(path))
        else:
            class_paths.append(path)
    # The split root and every class folder belong to themselves: a link from one
    # class into another (or back up) is not followed.
    seen = set() if _is_remote(split_root) else {os.path.realpath(p) for p in [split_root] + class_paths}
    for path in class_paths:
        listing.class_folders.append(relative(path))
        found_files = False
        for folder, subfolders, names, repeated in _walk(path, seen):
            listing.repeated_folders.extend(relative(p) for p in repeated)
            for hidden in sorted(n for n in subfolders if _is_hidden(n)):
                listing.hidden.append(relative(posixpath.join(folder, hidden)))
            subfolders[:] = sorted(n.rstrip("/") for n in subfolders if not _is_hidden(n))
            for file_name in sorted(names):
                file_path = posixpath.join(folder, file_name)
                if _is_hidden(file_name):
                    listing.hidden.append(relative(file_path))
                else:
                    listing.files.append(relative(file_path))
                    found_files = True
        if not found_files:
            listing.empty_class_folders.append(relative(path))
    return listing


def _size_and_mtime(path: str):
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
    for relative_path in sorted(listing.files + listing.outside_class_folders):
        size, mtime = _size_and_mtime(posixpath.join(root, relative_path))
        digest.update(f"{relative_path}\0{size}\0{mtime}\n".encode("utf-8"))
    for folder in listing.empty_class_folders:
        digest.update(f"{folder}/\n".encode("utf-8"))
    return f"split:{split_folder or '.'},num_files:{len(listing.files)},sha256:{digest.hexdigest()}"
