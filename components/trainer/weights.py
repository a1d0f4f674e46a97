"""Where the ResNet50 backbone's initial weights come from."""

import os
from typing import Optional

import tensorflow as tf

IMAGENET = "imagenet"
NONE = "none"
# The file Keras' ResNet50(include_top=False, weights="imagenet") loads.
IMAGENET_NOTOP_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
_IMAGENET_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_NOTOP_FILE
_IMAGENET_NOTOP_MD5 = "4d473c1dd8becc155b73f8504c6f6626"


class WeightsUnavailableError(RuntimeError):
    """The requested backbone weights cannot be found or fetched."""


def keras_cache_path() -> str:
    """Where Keras keeps (and looks for) downloaded ImageNet weights."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "models", IMAGENET_NOTOP_FILE)


def resolve_weights(source: str) -> Optional[str]:
    """Returns what to pass as ``ResNet50(weights=...)`` for ``source``.

    ``none`` gives None (random init).  ``imagenet`` uses the file in the Keras
    cache, fetching it there first if it is missing and the network allows; a
    path must name an existing weights file.  Anything unavailable raises
    WeightsUnavailableError saying what to do.
    """
    if source.lower() == NONE:
        return None
    if source.lower() == IMAGENET:
        if os.path.exists(keras_cache_path()):
            return IMAGENET
        try:
            tf.keras.utils.get_file(
                IMAGENET_NOTOP_FILE, _IMAGENET_NOTOP_URL, cache_subdir="models", file_hash=_IMAGENET_NOTOP_MD5
            )
        except Exception as error:  # any fetch failure gets the same advice
            raise WeightsUnavailableError(
                f"ImageNet weights for ResNet50 are not in the Keras cache ({keras_cache_path()}) "
                f"and could not be downloaded ({error}). Put {IMAGENET_NOTOP_FILE} there "
                "(or under $KERAS_HOME/models/), or pass --weights none to train from scratch, "
                "or --weights /path/to/weights.h5 to use a local file."
            ) from error
        return IMAGENET
    if not tf.io.gfile.exists(source):
        raise WeightsUnavailableError(
            f"Weights file {source!r} does not exist. Pass 'imagenet', 'none' or the path "
            "of a ResNet50 (include_top=False) weights file."
        )
    return source
