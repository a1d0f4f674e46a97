"""Pipeline wiring: typed config, demo data, ``create_pipeline`` and the run summary."""

import components  # noqa: F401  (fixes the Keras choice before TensorFlow loads)
