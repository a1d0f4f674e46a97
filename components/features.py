"""Names of the features every component agrees on.

The ingest component writes a reference to each file (``RELATIVE_PATH``,
``LABEL``, ``FILE_BYTES``, ``INGEST_ERROR``); the validator reads the file and
writes the examples everything downstream reads (``IMAGE`` to ``SHA256``), which
the curated schema in ``schemas/`` describes.
"""

IMAGE = "image"  # the encoded file bytes, never decoded pixels
LABEL = "label"  # the class folder name, escaped (components/names.py)
RELATIVE_PATH = "relative_path"  # path below the data root, '/'-separated, escaped (components/names.py)
FORMAT = "format"  # lower-case format read from the file header, or "unknown"
HEIGHT = "height"
WIDTH = "width"
CHANNELS = "channels"  # bands stored in the file (a palette image has 1)
SHA256 = "sha256"  # hex digest of the file's bytes
# Ingest's references only: the file's size when it was listed, and why it will not be read ("" when it will).
FILE_BYTES = "file_bytes"
INGEST_ERROR = "ingest_error"
# The ingest error of a link whose target lies outside the data folder: never read.
OUTSIDE_LINK_ERROR = "link leaves the data folder; its target was not read"

# Transform's output: the label's index in the learned vocabulary.
LABEL_ID = "label_id"
# Name of the vocabulary file Transform writes for the labels.
LABEL_VOCABULARY = "label"

# The format of a file whose header cannot be parsed.
UNKNOWN_FORMAT = "unknown"
