"""What the image validator accepts, converts, flags and rejects, and when it stops the run."""

import dataclasses
from typing import Any, Dict, Tuple

from components.knobs import knob


@dataclasses.dataclass(frozen=True)
class ValidationPolicy:
    allowed_formats: Tuple[str, ...] = knob(
        ("jpeg", "png", "gif", "bmp"), "Image formats accepted (what TensorFlow decodes), space-separated."
    )
    min_width: int = knob(16, "Narrowest image accepted, in pixels.")
    min_height: int = knob(16, "Shortest image accepted, in pixels.")
    max_width: int = knob(20000, "Widest image accepted, in pixels.")
    max_height: int = knob(20000, "Tallest image accepted, in pixels.")
    max_aspect_ratio: float = knob(10.0, "Largest long-side/short-side ratio accepted.")
    min_file_bytes: int = knob(32, "Smallest file accepted, in bytes.")
    max_file_bytes: int = knob(50_000_000, "Largest file accepted, in bytes.")
    # Checked from the header, before any pixel is decoded.
    max_pixels: int = knob(50_000_000, "Most pixels (width x height) accepted; guards against decompression bombs.")
    convert_cmyk: bool = knob(True, "Convert CMYK JPEGs to RGB (else reject them).")
    apply_exif_orientation: bool = knob(True, "Rotate JPEGs by their EXIF orientation (TensorFlow ignores it).")
    accept_animated: bool = knob(True, "Accept animated GIFs, training on their first frame (else reject them).")
    min_examples_per_class: int = knob(
        2, "Fewest accepted training images a class needs (at least 1 always); fewer stops the run."
    )
    max_class_imbalance: float = knob(
        20.0, "Largest ratio between the biggest and smallest class in training before it is flagged."
    )
    max_rejected_fraction: float = knob(0.2, "Largest fraction of files rejected before the run stops.")

    def __post_init__(self):
        if not self.allowed_formats:
            raise ValueError("allowed_formats must name at least one format.")
        object.__setattr__(self, "allowed_formats", tuple(f.lower() for f in self.allowed_formats))
        for name in ("min_width", "min_height", "max_width", "max_height", "max_pixels", "max_file_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}.")
        if self.min_width > self.max_width or self.min_height > self.max_height:
            raise ValueError("Minimum image sides must not exceed the maximum ones.")
        if self.min_file_bytes < 0 or self.min_file_bytes > self.max_file_bytes:
            raise ValueError("min_file_bytes must be in [0, max_file_bytes].")
        if self.max_aspect_ratio < 1 or self.max_class_imbalance < 1:
            raise ValueError("max_aspect_ratio and max_class_imbalance must be at least 1.")
        if self.min_examples_per_class < 0:
            raise ValueError("min_examples_per_class must be 0 or more.")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            raise ValueError(f"max_rejected_fraction must be in [0, 1], got {self.max_rejected_fraction}.")

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "ValidationPolicy":
        values = dict(values)
        values["allowed_formats"] = tuple(values.get("allowed_formats", cls.allowed_formats))
        return cls(**values)
