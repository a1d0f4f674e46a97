"""What the benchmarks share: generated images and where results go."""

import json
import pathlib

import numpy as np
from PIL import Image

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"


def generate_jpegs(root: pathlib.Path, count: int, width: int = 224, height: int = 224) -> pathlib.Path:
    """``count`` ``width`` x ``height`` JPEGs in 4 class folders under ``root``, the same every time."""
    rng = np.random.default_rng(0)
    for index in range(count):
        folder = root / f"class_{index % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        # Smooth random colour fields compress like photos, unlike pure noise.
        small = rng.integers(0, 256, (height // 16, width // 16, 3), dtype=np.uint8)
        Image.fromarray(small).resize((width, height), Image.BICUBIC).save(folder / f"{index:05d}.jpg", quality=90)
    return root


def write_results(file_name: str, results: dict) -> None:
    path = RESULTS_DIR / file_name
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    print(f"\nWritten to {path}")
