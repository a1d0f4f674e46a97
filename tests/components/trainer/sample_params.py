"""The small TrainParams the Trainer's tests fine-tune with."""

from components.trainer.params import AugmentParams, TrainParams

# A 32-pixel model with random weights: one epoch for the head, one fine-tuning, light augmentation.
# No TFLite models: each ResNet50 conversion takes seconds (tests/test_local_runner.py converts).
TINY = TrainParams(
    image_size=32, batch_size=4, head_epochs=1, finetune_epochs=1, unfreeze_layers=5, weights="none",
    augment=AugmentParams.from_preset("light"), early_stopping_patience=1, tflite="none",
)
