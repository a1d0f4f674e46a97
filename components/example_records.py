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


def compression_of_file(path: str) -> str:
    """"GZIP" for a ``*.gz`` record file (as ExampleGen writes), "" for a plain one."""
    return "GZIP" if path.endswith(".gz") else ""


def compression_of(file_patterns: Union[str, list[str]]) -> str:
    """The compression of the record files ``file_patterns`` match (one for all)."""
    return compression_of_file(example_files(file_patterns)[0])
