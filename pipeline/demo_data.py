"""The built-in demo dataset: synthetic but learnable labelled images.

Three classes of shapes (circle, square, triangle), each drawn in a hue band of
its own over a noisy background, at random sizes, positions and image sizes.
Written as real JPEG and PNG files in ``<class>/<file>`` folders, generated once
and deterministically from the seed: a rerun finds the same files (same bytes,
same modification times), so TFX can reuse its cached results.
"""

import colorsys
import json
import os
import shutil
import tempfile

import numpy as np
from absl import logging
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
_MARKER = ".demo_dataset.json"
_FORMAT_VERSION = 1


def _draw_image(rng: np.random.Generator, class_index: int) -> Image.Image:
    width, height = (int(v) for v in rng.integers(72, 129, size=2))
    background = rng.normal(110, 35, size=(height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(background, "RGB")
    # Each class owns a third of the hue circle, with some spread.
    hue = (class_index / len(CLASSES) + rng.uniform(-0.1, 0.1)) % 1.0
    colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1.0), rng.uniform(0.6, 1.0)))
    size = rng.uniform(0.35, 0.7) * min(width, height)
    cx = rng.uniform(size / 2, width - size / 2)
    cy = rng.uniform(size / 2, height - size / 2)
    box = (cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2)
    draw = ImageDraw.Draw(image)
    shape = CLASSES[class_index]
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, box[1]), (box[0], box[3]), (box[2], box[3])], fill=colour)
    return image


def _generate(target: str, images_per_class: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for class_index, name in enumerate(CLASSES):
        folder = os.path.join(target, name)
        os.makedirs(folder)
        for number in range(images_per_class):
            image = _draw_image(rng, class_index)
            # Every fourth file is a PNG, so both encodings are exercised.
            if number % 4 == 3:
                image.save(os.path.join(folder, f"{name}_{number:04d}.png"), format="PNG")
            else:
                image.save(os.path.join(folder, f"{name}_{number:04d}.jpg"), format="JPEG", quality=90)


def ensure_demo_dataset(data_dir: str, images_per_class: int, seed: int) -> str:
    """Returns ``data_dir``, generating the dataset there unless it is already complete.

    The files are written to a temporary folder and moved into place at the end,
    so an interrupted run never leaves a half-written dataset that looks complete.
    """
    spec = {"version": _FORMAT_VERSION, "images_per_class": images_per_class, "seed": seed, "classes": CLASSES}
    marker = os.path.join(data_dir, _MARKER)
    if os.path.exists(marker):
        with open(marker, encoding="utf-8") as f:
            if json.load(f) == json.loads(json.dumps(spec)):
                logging.info("Using the demo dataset already in %s", data_dir)
                return data_dir
        logging.info("Demo dataset in %s was made with other settings; generating it again.", data_dir)
    parent = os.path.dirname(os.path.abspath(data_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".demo_data_", dir=parent)
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the data is not
    try:
        _generate(staging, images_per_class, seed)
        with open(os.path.join(staging, _MARKER), "w", encoding="utf-8") as f:
            json.dump(spec, f)
        if os.path.exists(data_dir):
            shutil.rmtree(data_dir)
        os.rename(staging, data_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logging.info("Generated %d demo images in %s", images_per_class * len(CLASSES), data_dir)
    return data_dir


def main(argv=None) -> int:
    """``python -m pipeline.demo_data DIR``: the demo preset's dataset in DIR (the Dockerfile bakes it in)."""
    import argparse  # pylint: disable=import-outside-toplevel

    from pipeline.config import PipelineConfig  # pylint: disable=import-outside-toplevel

    demo = PipelineConfig.demo()
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--images-per-class", type=int, default=demo.demo_images_per_class)
    parser.add_argument("--seed", type=int, default=demo.train.seed)
    args = parser.parse_args(argv)
    logging.set_verbosity(logging.INFO)
    ensure_demo_dataset(args.data_dir, args.images_per_class, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
