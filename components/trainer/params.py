"""Typed hyper-parameters of the Trainer, passed to it as TFX ``custom_config``."""

import dataclasses
import math
from typing import Any

from components.knobs import knob

# Hardware settings (components/trainer/acceleration.py acts on them).
AUTO, ON, OFF = "auto", "on", "off"
SWITCH_VALUES = (AUTO, ON, OFF)
# Training recipes: fine-tune pretrained weights (a head on a frozen backbone, then the top
# layers at a low rate), or train the whole network from random weights in one phase.
FINE_TUNE, FROM_SCRATCH = "fine-tune", "from-scratch"
RECIPES = {
    FINE_TUNE: {"head_learning_rate": 1e-3, "finetune_learning_rate": 1e-5, "unfreeze_layers": 30,
                "early_stopping_patience": 3},
    # From random init BatchNorm trains (model.py), every layer learns from the first step
    # at a rate meant for that, and early stopping is off: the eval loss swings while the
    # BatchNorm statistics settle, which would stop training at an early, worse model.
    FROM_SCRATCH: {"head_epochs": 0, "finetune_learning_rate": 1e-3, "unfreeze_layers": -1,
                   "early_stopping_patience": 0},
}
# Distribution strategies: none (the default strategy), one machine's devices, several machines.
NONE, MIRRORED, MULTI_WORKER = "none", "mirrored", "multi_worker"
DISTRIBUTION_VALUES = (AUTO, NONE, MIRRORED, MULTI_WORKER)
# Serving refuses images with more pixels than this before decoding them: a
# 60-byte PNG header can claim 100000 x 100000 pixels (a decompression bomb).
DEFAULT_MAX_SERVING_PIXELS = 50_000_000
PRESET_NAMES = ("none", "light", "standard", "heavy")
TFLITE_KINDS = ("float16", "float32", "int8")


@dataclasses.dataclass(frozen=True)
class AugmentParams:
    """Training-split augmentation: a probability and a magnitude per op.

    The defaults are the ``standard`` preset.  ``PRESETS`` holds every preset as a
    complete object; start from one and override single fields with
    ``AugmentParams.from_preset("heavy", mixup_prob=0)``.  ``preset`` records
    which one the values started from.  ``geometric`` and ``color`` switch whole
    groups off (no colour changes for X-rays, say); vertical flips are off in
    every preset.
    """

    preset: str = knob("standard", "Augmentation preset the other augment fields start from.")
    geometric: bool = knob(True, "Allow geometric ops (flips, rotation, zoom, translation, crop).")
    color: bool = knob(True, "Allow colour ops (brightness, contrast, saturation, hue, grayscale).")
    horizontal_flip: float = knob(0.5, "Probability of a left-right flip.")
    vertical_flip: float = knob(0.0, "Probability of an up-down flip.")
    rotation_prob: float = knob(0.5, "Probability of a rotation.")
    rotation: float = knob(0.05, "Largest rotation, as a fraction of a full turn (0.05 is +-18 degrees).")
    zoom_prob: float = knob(0.5, "Probability of a zoom.")
    zoom: float = knob(0.1, "Largest relative zoom in or out, about the centre (0.1 is 90%..110%).")
    translate_prob: float = knob(0.5, "Probability of a translation.")
    translate: float = knob(0.1, "Largest shift, as a fraction of the image side.")
    crop_prob: float = knob(0.5, "Probability of a random resized crop.")
    crop_min_area: float = knob(0.6, "Smallest crop area, as a fraction of the image (resized back to full size).")
    crop_aspect: float = knob(1.33, "Largest crop aspect-ratio change (and its inverse).")
    brightness_prob: float = knob(0.5, "Probability of a brightness change.")
    brightness: float = knob(0.1, "Largest brightness shift, as a fraction of the pixel range.")
    contrast_prob: float = knob(0.5, "Probability of a contrast change.")
    contrast: float = knob(0.2, "Largest relative contrast change (0.2 is a factor in 0.8..1.2).")
    saturation_prob: float = knob(0.5, "Probability of a saturation change.")
    saturation: float = knob(0.3, "Largest relative saturation change.")
    hue_prob: float = knob(0.3, "Probability of a hue rotation.")
    hue: float = knob(0.03, "Largest hue rotation, as a fraction of the colour circle.")
    grayscale_prob: float = knob(0.05, "Probability of turning an image gray.")
    noise_prob: float = knob(0.0, "Probability of Gaussian noise.")
    noise: float = knob(0.03, "Largest noise standard deviation, as a fraction of the pixel range.")
    blur_prob: float = knob(0.0, "Probability of a Gaussian blur.")
    blur: float = knob(1.5, "Largest blur sigma, in pixels.")
    erase_prob: float = knob(0.25, "Probability of erasing a random rectangle (cutout).")
    erase_area: float = knob(0.2, "Largest erased area, as a fraction of the image.")
    mixup_prob: float = knob(0.0, "Probability that an image is mixed with another (mixup, soft labels).")
    mixup_alpha: float = knob(0.2, "Beta(alpha, alpha) parameter of the mixup weight.")
    cutmix_prob: float = knob(
        0.0, "Probability that a patch of another image is pasted in (cutmix, soft labels); an image gets "
        "mixup or cutmix, so mixup_prob + cutmix_prob is at most 1."
    )
    cutmix_alpha: float = knob(1.0, "Beta(alpha, alpha) parameter of the cutmix area.")

    def __post_init__(self):
        if self.preset not in PRESET_NAMES:
            raise ValueError(f"Unknown augmentation preset {self.preset!r} (augment.preset); choose from "
                             f"{list(PRESET_NAMES)}.")
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            is_probability = field.name.endswith("_prob") or field.name in ("horizontal_flip", "vertical_flip")
            if is_probability and not 0.0 <= value <= 1.0:
                raise ValueError(f"augment.{field.name} is a probability: it must be in [0, 1], got {value}.")
        for name in ("rotation", "zoom", "translate", "brightness", "contrast", "saturation", "noise", "erase_area"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"augment.{name} must be in [0, 1), got {getattr(self, name)}.")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"augment.hue must be in [0, 0.5], got {self.hue}.")
        if not 0.0 < self.crop_min_area <= 1.0:
            raise ValueError(f"augment.crop_min_area is a share of the area: it must be in (0, 1], "
                             f"got {self.crop_min_area}.")
        if self.crop_aspect < 1.0:
            raise ValueError(f"augment.crop_aspect is the largest aspect ratio: it must be at least 1, "
                             f"got {self.crop_aspect}.")
        if self.blur < 0:
            raise ValueError(f"augment.blur is a sigma in pixels: it must be 0 or more, got {self.blur}.")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) <= 0:
                raise ValueError(f"augment.{name} is a Beta alpha: it must be above 0, got {getattr(self, name)}.")
        if self.mixup_prob + self.cutmix_prob > 1.0:
            raise ValueError(
                "An image gets mixup or cutmix, not both: augment.mixup_prob + augment.cutmix_prob must be at most 1, "
                f"got {self.mixup_prob} + {self.cutmix_prob}."
            )

    @classmethod
    def from_preset(cls, preset: str = "standard", **overrides) -> "AugmentParams":
        """The preset named ``preset`` with ``overrides``: any subset of the fields."""
        # An unknown name is refused by __post_init__, with the others it could be.
        return dataclasses.replace(PRESETS.get(preset, PRESETS["standard"]), preset=preset, **overrides)

    def probabilities(self) -> dict[str, float]:
        """Every op's probability field and its value."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name.endswith("_prob") or f.name.endswith("_flip")}

    @property
    def mixes_labels(self) -> bool:
        return self.mixup_prob > 0 or self.cutmix_prob > 0

    @property
    def blur_radius(self) -> int:
        """The blur kernel's reach either side of a pixel: 3 sigma, whole pixels."""
        return max(1, math.ceil(3.0 * self.blur))

    def check_image_size(self, image_size: int) -> None:
        """ValueError unless these augmentations fit images of ``image_size`` pixels."""
        # The blur mirrors the image at its borders, which needs the kernel to reach less than an image side.
        if self.blur_prob > 0 and self.blur > 0 and self.blur_radius >= image_size:
            raise ValueError(
                f"augment.blur {self.blur} reaches {self.blur_radius} pixels (3 sigma), which must be less than "
                f"the image size, {image_size}: lower augment.blur or raise the image size."
            )


def _presets() -> dict[str, AugmentParams]:
    standard = AugmentParams()
    off = dataclasses.replace(standard, preset="none", **dict.fromkeys(standard.probabilities(), 0.0))
    light = dataclasses.replace(
        off, preset="light", horizontal_flip=0.5, rotation_prob=0.5, rotation=0.03, zoom_prob=0.5, zoom=0.1,
        brightness_prob=0.5, brightness=0.05, contrast_prob=0.5, contrast=0.1)
    heavy = dataclasses.replace(
        standard, preset="heavy", rotation=0.08, zoom=0.2, translate=0.15, crop_min_area=0.35, brightness=0.2,
        contrast=0.35, saturation=0.5, hue=0.06, grayscale_prob=0.1, noise_prob=0.3, noise=0.03, blur_prob=0.2,
        blur=1.5, erase_prob=0.4, erase_area=0.3, mixup_prob=0.3, mixup_alpha=0.2, cutmix_prob=0.3, cutmix_alpha=1.0)
    return {p.preset: p for p in (off, light, standard, heavy)}


PRESETS = _presets()


def _listed(value: str) -> list[str]:
    """'float16, int8' -> ['float16', 'int8']."""
    return [item.strip() for item in value.split(",")]


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """Everything ``run_fn`` needs besides the artifacts TFX hands it."""

    image_size: int = knob(224, "Side of the square images the model sees, in pixels.")
    batch_size: int = knob(32, "Images per training step.")
    head_epochs: int = knob(3, "Phase 1: epochs training the head on a frozen backbone.")
    finetune_epochs: int = knob(2, "Phase 2: epochs fine-tuning the top backbone layers.")
    head_learning_rate: float = knob(RECIPES[FINE_TUNE]["head_learning_rate"], "Adam learning rate of phase 1.")
    finetune_learning_rate: float = knob(RECIPES[FINE_TUNE]["finetune_learning_rate"], "Adam learning rate of phase 2.")
    weights: str = knob("imagenet", "Backbone weights: 'imagenet' (Keras cache), 'none', or a weights file path.")
    recipe: str = knob(  # the defaults of the fields it sets are its settings
        FINE_TUNE, "Training recipe: 'fine-tune' (a head on the frozen backbone, then its top layers at a low "
        "rate) or 'from-scratch' (every layer from the start, in one phase); set from --weights unless given "
        "('none': from-scratch), and the recipe's settings apply unless given too."
    )
    unfreeze_layers: int = knob(
        RECIPES[FINE_TUNE]["unfreeze_layers"],
        "Backbone layers, counted from the top, that phase 2 unfreezes (-1: all).",
    )
    dropout: float = knob(0.2, "Dropout rate before the classification layer.")
    shuffle_buffer_mb: float = knob(
        0.0, "Memory for the training shuffle buffer, in MB: as many images as fit (decoded when cached, encoded "
        "otherwise), at most the whole split; 0: an eighth of the memory free when training starts."
    )
    seed: int = knob(
        42, "Seed of the train/eval hash split, shuffle order, augmentation, initialisation and demo data."
    )
    cache: str = knob(
        "auto", "Cache decoded, resized uint8 images before augmentation: 'auto' (in memory when both splits "
        "fit in a quarter of the memory free when training starts, else none), 'memory', 'none' or a directory "
        "(a path with a '/', e.g. ./image_cache), where each split, image size and set of examples gets its "
        "own cache, reused by later runs."
    )
    warm_start: bool = knob(
        False, "Start from the latest blessed model's weights when there is one (else from --weights)."
    )
    lr_schedule: str = knob("cosine", "Learning rate within each phase: 'cosine' (warm-up, then decay) or 'constant'.")
    warmup_fraction: float = knob(0.1, "Fraction of each phase's steps spent warming the learning rate up (cosine).")
    label_smoothing: float = knob(0.1, "Label smoothing of the cross-entropy loss.")
    class_weights: str = knob(
        "balanced", "Loss weight per class: 'balanced' (inverse to its share of the training split) or 'none'."
    )
    early_stopping_patience: int = knob(
        RECIPES[FINE_TUNE]["early_stopping_patience"],
        "Epochs without a better validation loss before a phase stops, keeping its best weights (0: off).",
    )
    mixed_precision: str = knob("auto", "mixed_float16 compute: 'auto' (on with a GPU), 'on' or 'off'.")
    xla: str = knob("auto", "XLA-compiled training steps: 'auto' (on with a GPU), 'on' or 'off'.")
    distribution: str = knob(
        "auto", "Distribution strategy: 'auto' (mirrored with a GPU, multi_worker under a multi-worker "
        "TF_CONFIG), 'none', 'mirrored' or 'multi_worker'. batch_size is the global batch."
    )
    top_k: int = knob(5, "Classes the serving signatures list in top_k_class_names (at most the class count).")
    max_serving_pixels: int = knob(
        DEFAULT_MAX_SERVING_PIXELS, "Serving refuses images whose header claims more pixels than this."
    )
    tflite: str = knob(
        "float16,int8", "TFLite models exported beside the SavedModel and measured on the eval split: any of "
        "'float16', 'float32' (float models) and 'int8' (full-integer, calibrated on training images), "
        "comma-separated, or 'none'."
    )
    tflite_calibration_images: int = knob(
        100, "Training images that calibrate the int8 TFLite model's ranges (a sample stratified by class).")
    tflite_eval_images: int = knob(
        500, "Eval images each TFLite model is measured on (a sample stratified by class).")
    augment: AugmentParams = dataclasses.field(default_factory=AugmentParams)

    def __post_init__(self):
        if self.image_size < 32:
            raise ValueError(f"image_size must be at least 32 (ResNet50's minimum), got {self.image_size}.")
        self.augment.check_image_size(self.image_size)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}.")
        if self.shuffle_buffer_mb < 0:
            raise ValueError(f"shuffle_buffer_mb must be 0 (sized from the free memory) or more, "
                             f"got {self.shuffle_buffer_mb}.")
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
        if self.cache not in ("auto", "memory", "none") and "/" not in self.cache:
            raise ValueError(
                f"cache must be 'auto', 'memory', 'none' or a directory path with a '/' (./{self.cache} for a "
                f"folder here), got {self.cache!r}."
            )
        if not self.weights:
            raise ValueError("weights must be 'imagenet', 'none' or a path to a weights file.")
        choices = {
            "recipe": tuple(RECIPES),
            "lr_schedule": ("cosine", "constant"),
            "class_weights": ("balanced", "none"),
            "mixed_precision": SWITCH_VALUES,
            "xla": SWITCH_VALUES,
            "distribution": DISTRIBUTION_VALUES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if not 0.0 <= self.warmup_fraction < 1.0 or not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError("warmup_fraction and label_smoothing must be in [0, 1).")
        if self.early_stopping_patience < 0 or self.top_k < 1 or self.max_serving_pixels < 1:
            raise ValueError("early_stopping_patience must be >= 0, top_k and max_serving_pixels >= 1.")

        kinds = _listed(self.tflite)
        known = kinds == ["none"] or set(kinds) <= set(TFLITE_KINDS)
        if not known or len(set(kinds)) != len(kinds) or {"float16", "float32"} <= set(kinds):
            raise ValueError(f"tflite must be 'none' or a comma-separated list of {', '.join(TFLITE_KINDS)} "
                             f"(one float model at most), got {self.tflite!r}.")
        if self.tflite_calibration_images < 1 or self.tflite_eval_images < 1:
            raise ValueError("tflite_calibration_images and tflite_eval_images must be at least 1.")

    @property
    def tflite_kinds(self) -> tuple[str, ...]:
        """The TFLite models to export, float first."""
        kinds = _listed(self.tflite)
        return tuple(kind for kind in TFLITE_KINDS if kind in kinds)

    def to_custom_config(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_custom_config(cls, config: dict[str, Any]) -> "TrainParams":
        config = dict(config)
        augment = AugmentParams.from_preset(**config.pop("augment", {}))
        return cls(augment=augment, **config)

    @property
    def cache_dir(self):
        """Where the image cache goes: "" for memory, None for no cache ('auto' is decided
        with the data in hand, by ``dataset.plan_input``: memory until then)."""
        if self.cache == "none":
            return None
        return "" if self.cache in ("memory", "auto") else self.cache
