"""Typed hyper-parameters of the Trainer, passed to it as TFX ``custom_config``."""

import dataclasses
from typing import Any, Dict


def _knob(default, help_text: str):
    """A field with the help text the runner shows for its flag."""
    return dataclasses.field(default=default, metadata={"help": help_text})


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Training-split augmentation; every magnitude of 0 switches its op off."""

    enabled: bool = _knob(True, "Augment the training split at all.")
    horizontal_flip: bool = _knob(True, "Flip half of the training images left-right.")
    rotation: float = _knob(0.05, "Largest rotation, as a fraction of a full turn (0.05 is +-18 degrees).")
    zoom: float = _knob(0.1, "Largest relative zoom in or out (0.1 is 90%..110%).")
    brightness: float = _knob(0.1, "Largest brightness shift, as a fraction of the pixel range.")
    contrast: float = _knob(0.2, "Largest relative contrast change (0.2 is a factor in 0.8..1.2).")

    def __post_init__(self):
        for name in ("rotation", "zoom", "brightness", "contrast"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1), got {value}.")


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Everything ``run_fn`` needs besides the artifacts TFX hands it."""

    image_size: int = _knob(224, "Side of the square images the model sees, in pixels.")
    batch_size: int = _knob(32, "Images per training step.")
    head_epochs: int = _knob(3, "Phase 1: epochs training the head on a frozen backbone.")
    finetune_epochs: int = _knob(2, "Phase 2: epochs fine-tuning the top backbone layers.")
    head_learning_rate: float = _knob(1e-3, "Adam learning rate of phase 1.")
    finetune_learning_rate: float = _knob(1e-5, "Adam learning rate of phase 2.")
    weights: str = _knob("imagenet", "Backbone weights: 'imagenet' (Keras cache), 'none', or a weights file path.")
    unfreeze_layers: int = _knob(30, "Backbone layers, counted from the top, that phase 2 unfreezes (-1: all).")
    dropout: float = _knob(0.2, "Dropout rate before the classification layer.")
    shuffle_buffer: int = _knob(1000, "Encoded examples held in the training shuffle buffer.")
    seed: int = _knob(42, "Seed of the shuffle order, augmentation, initialisation and demo data.")
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 (ResNet50's minimum), got {self.image_size}.")
        for name in ("batch_size", "shuffle_buffer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        for name in ("head_epochs", "finetune_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}.")
        if self.head_epochs == 0 and (self.finetune_epochs == 0 or self.unfreeze_layers == 0):
            raise ValueError(
                "Nothing would be trained: set head_epochs > 0, or finetune_epochs > 0 with unfreeze_layers != 0."
            )
        for name in ("head_learning_rate", "finetune_learning_rate"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}.")
        if self.unfreeze_layers < -1:
            raise ValueError(f"unfreeze_layers must be -1 (all), 0 or more, got {self.unfreeze_layers}.")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}.")
        if not self.weights:
            raise ValueError("weights must be 'imagenet', 'none' or a path to a weights file.")

    def to_custom_config(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_custom_config(cls, config: Dict[str, Any]) -> "TrainParams":
        config = dict(config)
        augment = AugmentParams(**config.pop("augment", {}))
        return cls(augment=augment, **config)
