"""``preprocessing_fn`` for TFX Transform.

Only the label is transformed: Transform learns its vocabulary over the training
split and maps each label to an index.  Images are not touched here; the Trainer
decodes them inside its ``tf.data`` pipeline, so no pixels are written to disk.
"""

import tensorflow_transform as tft

from components import features


def preprocessing_fn(inputs):
    """Maps the string label to its index in the learned vocabulary (-1 if unseen)."""
    return {
        features.LABEL_ID: tft.compute_and_apply_vocabulary(
            inputs[features.LABEL],
            vocab_filename=features.LABEL_VOCABULARY,
            default_value=-1,
        )
    }
