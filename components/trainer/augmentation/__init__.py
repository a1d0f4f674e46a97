"""Batch augmentation in pure TensorFlow, vectorised over the batch, driven by one seed.

Every random draw is a stateless op keyed by a per-batch seed, so a run is
reproducible whatever the parallelism of the input pipeline. Each op is applied
to each image with its own probability and a random magnitude up to its limit.
One module per family of ops, applied in this order by ``batch.augment_batch``:

* ``geometry``: flips, rotation, zoom, translation and random resized crop as
  one affine map per image, applied by one bilinear warp.
* ``colour``: brightness, contrast, saturation, grayscale and hue as one 3x3
  matrix and offset per image, applied in one pass.
* ``noise``, ``blur``, ``erasing``: Gaussian noise, Gaussian blur, random erasing.
* ``mixing``: mixup and cutmix, with soft labels.

``draws`` holds the random draws they all take. Images come in as uint8 or
float32 in [0, 255] and leave as float32; labels are one-hot float32.
"""

from components.trainer.augmentation.batch import augment_batch, image_means, is_active, uses_image_means

__all__ = ["augment_batch", "image_means", "is_active", "uses_image_means"]
