"""Shim for Beam's --setup_file: remote Beam workers (Dataflow and the like) install
this package from it. The package metadata lives in pyproject.toml."""

import setuptools

setuptools.setup()
