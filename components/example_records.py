"""The record files of an Examples artifact's split, as the components read them.

ExampleGen writes GZIP-compressed ``*.gz`` files; the validator writes plain ones
(the images are compressed already)."""

from typing import Union

import tensorflow as tf


def example_files(file_patterns: Union[str, list[str]]) -> list[str]:
    """The files ``file_patterns`` match, sorted; ValueError if none."""
    patterns = [file_patterns] if isinstance(file_patterns, str) else list(file_patterns)
    files = sorted(f for pattern in patterns for f in tf.io.gfile.glob(pattern))
    if not files:
        raise ValueError(f"No example files match {patterns}.")
    return files


def compression_of(file_patterns: Union[str, list[str]]) -> str:
    """"GZIP" for ``*.gz`` record files (as ExampleGen writes), "" for plain ones."""
    return "GZIP" if example_files(file_patterns)[0].endswith(".gz") else ""
