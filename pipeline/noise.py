"""Warnings nobody running this product can act on, silenced in one place.

Only messages about the installed stack; never one about the user's data or
settings.  Called by the runners before TensorFlow is imported.
"""

import logging
import os
import warnings


def _not_startswith(prefix: str):
    return lambda record: not record.getMessage().startswith(prefix)


def silence() -> None:
    # TensorFlow's C++ start-up notes (CPU instructions, oneDNN): information, not advice.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    # TFX 1.16 needs Python 3.10; Google's client libraries warn about it at each import.
    warnings.filterwarnings("ignore", message="You are using a non-supported Python version", category=FutureWarning)
    # Beam's direct runner reads python-snappy only to checksum faster; nothing is wrong without it.
    logging.getLogger("apache_beam.io.tfrecordio").addFilter(_not_startswith("Couldn't find python-snappy"))
