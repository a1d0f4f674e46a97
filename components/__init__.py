"""Custom TFX components and module code for image classification.

tensorflow-transform 1.16 only works with Keras 2, and it forces
``TF_USE_LEGACY_KERAS=1`` on import.  We make the same choice here, on purpose
and before TensorFlow is imported anywhere in the product, so that
``tf.keras`` is tf-keras (Keras 2) in every process: the runner, the Beam
workers and a Kubeflow container alike.

For the same reason it switches on TensorFlow's oneDNN kernels
(``TF_ENABLE_ONEDNN_OPTS=1``) unless the environment says otherwise.
TensorFlow turns them on by itself only on the CPUs it recognises; elsewhere
(AMD EPYC, for one) its own convolution gradients on small feature maps make
ResNet50 train several times slower (docs/training.md#training-speed).
"""

import importlib
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
if os.environ["TF_USE_LEGACY_KERAS"] not in ("1", "true", "True"):
    raise RuntimeError(
        "TF_USE_LEGACY_KERAS is set to "
        f"{os.environ['TF_USE_LEGACY_KERAS']!r}; this product needs tf-keras "
        "(Keras 2), which tensorflow-transform 1.16 requires. Unset it or set it to 1."
    )
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def __getattr__(name):
    # Kubeflow recreates a custom artifact type from its type name, which must
    # read "<module>.<Class>" with a one-word module: "components.ImageValidationReport".
    exported = importlib.import_module("components.artifacts").EXPORTED
    if name in exported:
        return exported[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
