"""What the image validator accepts, converts, flags and rejects, and when it stops the run."""

import dataclasses
from typing import Any

from components.knobs import knob

REJECT, FLAG = "reject", "flag"
# What TensorFlow 2.16's decode_image reads (MPO, a camera JPEG with extra frames, is read as a JPEG).
NATIVE_FORMATS = ("jpeg", "png", "gif", "bmp")
# Formats Pillow reads that TensorFlow does not: converted to PNG by default.
CONVERTIBLE_FORMATS = ("webp", "tiff", "avif", "jpeg2000", "ico", "ppm", "tga", "pcx", "sgi")


@dataclasses.dataclass(frozen=True)
class ValidationPolicy:
    allowed_formats: tuple[str, ...] = knob(
        ("jpeg", "png", "gif", "bmp"), "Image formats accepted as they are (what TensorFlow decodes), space-separated."
    )
    convert_formats: tuple[str, ...] = knob(
        CONVERTIBLE_FORMATS,
        "Image formats Pillow reads but TensorFlow does not, converted to PNG (lossless) and flagged; "
        "any other format is rejected.",
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
    follow_outside_links: bool = knob(
        False, "Read files that symbolic links inside the data folder point to outside it (else report them unread)."
    )
    near_duplicates: bool = knob(True, "Find near-duplicate images (resized, re-encoded, recoloured, cropped copies).")
    near_duplicate_threshold: int = knob(
        32, "Largest perceptual-hash distance (bits of 256) at which two images count as near-duplicates."
    )
    near_duplicate_colour_tolerance: int = knob(
        24, "Largest difference of mean colour (0-255 levels, any channel) between near-duplicates."
    )
    near_duplicate_leakage: str = knob(
        "reject", "A near-copy of an image in an earlier split (train, then eval): reject or flag."
    )
    near_duplicate_label_conflict: str = knob("reject", "Near-copies filed under different classes: reject or flag.")
    near_duplicate_in_class: str = knob(
        "flag", "Near-copies within one class and split: reject or flag the later ones.")
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
        object.__setattr__(self, "convert_formats", tuple(f.lower() for f in self.convert_formats))
        unknown = set(self.allowed_formats) - set(NATIVE_FORMATS)
        if unknown:
            raise ValueError(
                f"allowed_formats {sorted(unknown)} are not decoded by TensorFlow: list them in convert_formats."
            )
        for name in ("near_duplicate_leakage", "near_duplicate_label_conflict", "near_duplicate_in_class"):
            if getattr(self, name) not in (REJECT, FLAG):
                raise ValueError(f"{name} must be {REJECT!r} or {FLAG!r}, got {getattr(self, name)!r}.")
        if not 0 <= self.near_duplicate_threshold <= 96:
            raise ValueError("near_duplicate_threshold must be in [0, 96] (of 256 bits), "
                             f"got {self.near_duplicate_threshold}.")
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

    def rejects(self, option: str) -> bool:
        """Whether the near-duplicate case ``option`` (a field name) rejects rather than flags."""
        return getattr(self, option) == REJECT

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ValidationPolicy":
        values = dict(values)
        for name in ("allowed_formats", "convert_formats"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)
