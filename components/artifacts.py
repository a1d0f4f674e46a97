"""The product's own artifact types, shared by the components that write and read them.

Kubeflow v2 recreates a custom artifact class from its type name, which must read
``<module>.<Class>`` with a one-word module: the ``components`` package exports
each of them under its own name.
"""

import json
import os

import tensorflow as tf
from tfx import types


class ImageFolderListing(types.Artifact):
    """What the ingest step listed in the data folder, per split folder: the files
    it read, and those it left out (hidden entries, files outside class folders,
    links leaving the folder) with the empty class folders.  The validator counts
    and reports every one of them."""

    TYPE_NAME = "components.ImageFolderListing"


class ImageValidationReport(types.Artifact):
    """``report.json`` (machine-readable), ``report.md`` (for people), ``files.jsonl``
    (one verdict per file)."""

    TYPE_NAME = "components.ImageValidationReport"


# The custom property of the ingest step's Examples artifact naming the folder its relative paths start from.
DATA_ROOT_PROPERTY = "data_root"


def data_root(examples: types.Artifact) -> str:
    """The data folder the ingest step's references point into."""
    root = examples.get_string_custom_property(DATA_ROOT_PROPERTY) if examples.has_custom_property(
        DATA_ROOT_PROPERTY) else ""
    if not root:
        raise ValueError(
            f"The ingested examples at {examples.uri} do not name their data folder (the '{DATA_ROOT_PROPERTY}' "
            "property): they were written by an earlier version of the ingest step. Rerun with --no-enable-cache "
            "or into a new --output-dir.")
    return root


EXPORTED = {cls.__name__: cls for cls in (ImageFolderListing, ImageValidationReport)}

_LISTING_FILE = "listing.json"


def write_listing(listing: ImageFolderListing, listings: dict[str, dict[str, list[str]]]) -> None:
    """``listings``: {split folder ("." without split folders): {kind: [escaped paths]}}."""
    tf.io.gfile.makedirs(listing.uri)
    with tf.io.gfile.GFile(os.path.join(listing.uri, _LISTING_FILE), "w") as f:
        json.dump(listings, f, indent=1, sort_keys=True)


def read_listing(listing_uri: str) -> dict[str, dict[str, list[str]]]:
    with tf.io.gfile.GFile(os.path.join(listing_uri, _LISTING_FILE)) as f:
        return json.load(f)
