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


# The shapes of ``generate_classes``; each shape comes in as many hue bands as the classes need.
SHAPES = ("circle", "square", "triangle", "cross")


def _draw_class_image(args) -> None:
    path, class_index, classes, seed = args
    rng = np.random.default_rng(seed)
    from PIL import ImageDraw  # pylint: disable=import-outside-toplevel

    width, height = (int(v) for v in rng.integers(80, 161, size=2))
    background = rng.normal(rng.uniform(60, 190), 30, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    shape, hue_band = SHAPES[class_index % len(SHAPES)], class_index // len(SHAPES)
    hue = (hue_band + rng.uniform(0.1, 0.9)) / -(-classes // len(SHAPES))
    import colorsys  # pylint: disable=import-outside-toplevel

    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.7, 1.0)))
    size = rng.uniform(0.4, 0.8) * min(width, height)
    cx, cy = rng.uniform(size / 2, width - size / 2), rng.uniform(size / 2, height - size / 2)
    box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    elif shape == "triangle":
        draw.polygon([(cx, box[1]), (box[0], box[3]), (box[2], box[3])], fill=colour)
    else:
        bar = size / 3
        draw.rectangle((cx - bar / 2, box[1], cx + bar / 2, box[3]), fill=colour)
        draw.rectangle((box[0], cy - bar / 2, box[2], cy + bar / 2), fill=colour)
    image.save(path, format="JPEG", quality=int(rng.integers(80, 96)))


def generate_classes(root: pathlib.Path, count: int, classes: int = 40, seed: int = 0) -> pathlib.Path:
    """``count`` distinct, learnable JPEGs (80-160 px) in ``classes`` folders ``<shape>_<hue>``,
    as many per class as divides evenly, the same every time; written by every core.
    A folder already holding ``count`` images is left as it is."""
    import multiprocessing  # pylint: disable=import-outside-toplevel

    root = pathlib.Path(root)
    if len(list(root.glob("*/*.jpg"))) == count:
        return root
    names = [f"{SHAPES[i % len(SHAPES)]}_{i // len(SHAPES)}" for i in range(classes)]
    for name in names:
        (root / name).mkdir(parents=True, exist_ok=True)
    jobs = [(root / names[i % classes] / f"{names[i % classes]}_{i // classes:06d}.jpg", i % classes,
             classes, seed * 10_000_019 + i) for i in range(count)]
    with multiprocessing.Pool() as pool:
        pool.map(_draw_class_image, jobs, chunksize=256)
    return root
