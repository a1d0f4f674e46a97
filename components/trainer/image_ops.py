"""The one decode/resize function shared by training, evaluation and serving."""

import tensorflow as tf


def decode_and_resize(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decodes one JPEG/PNG/GIF/BMP string to float32 RGB ``[size, size, 3]``.

    Values are whole numbers in [0, 255], so the Trainer can cache them as
    uint8 and training, evaluation and serving see exactly the same pixels.
    Grayscale is expanded and alpha dropped (``channels=3``); an animated GIF
    gives its first frame.  Pixel normalisation for ResNet50 happens inside
    the model.
    """
    image = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    image = tf.image.resize(image, [image_size, image_size], antialias=True)
    return tf.round(tf.clip_by_value(image, 0.0, 255.0))


def decode_batch(encoded: tf.Tensor, image_size: int) -> tf.Tensor:
    """Applies ``decode_and_resize`` to a ``[batch]`` string tensor."""
    return tf.map_fn(
        lambda one: decode_and_resize(one, image_size),
        encoded,
        fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32),
    )
