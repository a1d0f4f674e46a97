"""Classifies images with a served model: every image's class, probability and top k.

    python predict.py --model serving_model/image_classifier photos/ more/*.jpg
    make predict ARGS="--model serving_model/image_classifier photos/ --output predictions.jsonl"

``--model`` is a pushed version folder (``.../image_classifier/3``) or the model's
folder (its highest version is used).  Images are files, folders (walked, hidden
entries left out) and globs (``'photos/**/*.png'``).  The model's own
``serving_default`` signature decodes, resizes and normalises them, so the
pixels are exactly those the model was evaluated on; nothing is preprocessed here.

Rows go to ``--output`` (CSV, or JSON Lines for ``.jsonl``) as they are scored.
A file that is not an image the model reads, or cannot be read, is listed with
its reason in ``<output>.failed.csv`` and on the console, and the run goes on.
Exit status: 0 when every file was scored, 1 when some failed, 2 when nothing
could start (no model, no images, a bad flag).
"""

import argparse
import glob
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Optional

from components import names
from pipeline import noise
from pipeline.predictions import FORMATS, Prediction, PredictionWriter, top_k

SAVED_MODEL_FILE = "saved_model.pb"
# Reasons shown on the console before "... and N more (see the failures file)".
MAX_FAILURES_SHOWN = 10


class UsageError(ValueError):
    """The command cannot start: what is wrong with a flag, the model or the inputs."""


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="predict.py", description="Classify images with a pushed model (its serving_default signature).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("images", nargs="+", help="Image files, folders (walked) or glob patterns.")
    parser.add_argument("--model", required=True,
                        help="A model version folder (with saved_model.pb), or the model's folder: its highest "
                             "integer version is used.")
    parser.add_argument("--output", default="predictions.csv",
                        help="Where the rows go: CSV, or JSON Lines when the name ends in .jsonl.")
    parser.add_argument("--format", choices=FORMATS, default="", help="Force the output format.")
    parser.add_argument("--top-k", type=int, default=3, help="Classes listed per image, best first.")
    parser.add_argument("--batch-size", type=int, default=32, help="Images per call to the model.")
    return parser


def resolve_model_dir(path: str) -> str:
    """The SavedModel folder ``path`` names: itself, or its highest integer version."""
    if not os.path.isdir(path):
        raise UsageError(f"--model {path}: no such folder.")
    if os.path.exists(os.path.join(path, SAVED_MODEL_FILE)):
        return path
    versions = sorted(int(name) for name in os.listdir(path)
                      if name.isdigit() and os.path.exists(os.path.join(path, name, SAVED_MODEL_FILE)))
    if not versions:
        raise UsageError(f"--model {path}: neither a SavedModel (no {SAVED_MODEL_FILE}) nor a model folder "
                         "with integer version folders (as the pipeline pushes them).")
    return os.path.join(path, str(versions[-1]))


def _walk(folder: str) -> Iterator[str]:
    for root, subfolders, files in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        yield from (os.path.join(root, name) for name in sorted(files) if not name.startswith("."))


def expand_inputs(inputs: Sequence[str]) -> list[str]:
    """Every file the arguments name, in argument order, each once."""
    found, unmatched = [], []
    for argument in inputs:
        if os.path.isdir(argument):
            paths = list(_walk(argument))
        elif os.path.lexists(argument):
            paths = [argument]
        else:
            paths = sorted(path for path in glob.glob(argument, recursive=True) if not os.path.isdir(path))
        if not paths and not os.path.isdir(argument):
            unmatched.append(argument)
        found.extend(paths)
    if unmatched:
        raise UsageError("No such file, folder or matching files: " + ", ".join(unmatched))
    unique = list(dict.fromkeys(found))
    if not unique:
        raise UsageError("The folders given hold no files.")
    return unique


class Classifier:
    """The SavedModel's ``serving_default``, called on batches of encoded images."""

    def __init__(self, model_dir: str):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        from components.serving_signature import (  # pylint: disable=import-outside-toplevel
            IMAGE_BYTES,
            PROBABILITIES,
            SERVING_DEFAULT,
            read_labels,
        )

        self._tf = tf
        self._loaded = tf.saved_model.load(model_dir)
        if SERVING_DEFAULT not in self._loaded.signatures:
            raise UsageError(f"--model {model_dir}: the SavedModel has no {SERVING_DEFAULT} signature.")
        self._serve = self._loaded.signatures[SERVING_DEFAULT]
        self._input, self._output = IMAGE_BYTES, PROBABILITIES
        self.labels = read_labels(model_dir)
        self.device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"

    def probabilities(self, encoded: list[bytes]):
        """``[len(encoded), classes]`` probabilities; InvalidArgumentError when any image is refused."""
        outputs = self._serve(**{self._input: self._tf.constant(encoded, dtype=self._tf.string)})
        return outputs[self._output].numpy()

    def score(self, encoded: list[bytes]) -> list:
        """Each image's probabilities, or the model's reason for refusing it: a refused batch
        is split in halves until each refusal stands alone, so one bad file costs no others."""
        try:
            return list(self.probabilities(encoded))
        except self._tf.errors.InvalidArgumentError as error:
            if len(encoded) == 1:
                return [_refusal(error.message)]
        middle = len(encoded) // 2
        return self.score(encoded[:middle]) + self.score(encoded[middle:])


def _refusal(message: str) -> str:
    """The model's reason in one line, without TensorFlow's framing (the graph node, the op)."""
    framing = ("Graph execution error", "Detected at node", "<stack trace", "[[", "File ", "Traceback")
    for line in message.splitlines():
        if line.strip() and not line[0].isspace() and not line.startswith(framing):
            return line.split(" [[")[0].split(" [Op:")[0].strip()
    return "refused by the model"


def _read(path: str) -> tuple[Optional[bytes], str]:
    """The file's bytes, or why there are none."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        return None, f"cannot read: {error.strerror or error}"
    if not data:
        return None, "empty file"
    return data, ""


def _not_servable(data: bytes) -> str:
    """Why the model will not read these bytes, when the leading bytes already say so."""
    from components import image_bytes  # pylint: disable=import-outside-toplevel

    image_format = image_bytes.signature_format(data)
    if image_format in image_bytes.TENSORFLOW_FORMATS:
        return ""
    accepted = ", ".join(name.upper() for name in image_bytes.TENSORFLOW_FORMATS)
    if image_format:
        return f"{image_format.upper()} image: the model reads {accepted}; convert it first"
    return f"not an image the model reads ({accepted})"


def predict(model_dir: str, paths: Sequence[str], writer: PredictionWriter, k: int, batch_size: int,
            progress=None) -> str:
    """Scores ``paths`` in batches into ``writer``; unreadable or refused files go to its failures.
    Returns the device the model ran on."""
    classifier = Classifier(model_dir)
    batch: list[tuple[str, bytes]] = []

    def flush():
        results = classifier.score([data for _, data in batch])
        predictions = []
        for (path, _), result in zip(batch, results):
            if isinstance(result, str):
                writer.fail(path, result)
            else:
                predictions.append(Prediction(path, top_k(result, classifier.labels, k)))
        writer.write(predictions)
        if progress:
            progress(len(batch))
        batch.clear()

    for path in paths:
        shown = names.escape(path)
        data, reason = _read(path)
        reason = reason or _not_servable(data)
        if reason:
            writer.fail(shown, reason)
            if progress:
                progress(1)
            continue
        batch.append((shown, data))
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return classifier.device


def main(argv: Optional[list[str]] = None) -> int:
    args = build_arg_parser().parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        print("error: --top-k and --batch-size must be at least 1", file=sys.stderr)
        return 2
    try:
        model_dir = resolve_model_dir(args.model)
        paths = expand_inputs(args.images)
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # TensorFlow's C++ warnings about a refused image repeat what the failures list says.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    noise.silence()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # pylint: disable=import-outside-toplevel

    try:
        with PredictionWriter(args.output, args.format) as writer, Progress(
            TextColumn("Scoring"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            transient=True, redirect_stdout=False, redirect_stderr=False,
        ) as bar:
            task = bar.add_task("images", total=len(paths))
            device = predict(model_dir, paths, writer, args.top_k, args.batch_size,
                             progress=lambda done: bar.advance(task, done))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for failure in writer.failures[:MAX_FAILURES_SHOWN]:
        print(f"failed: {failure.path}: {failure.reason}", file=sys.stderr)
    if len(writer.failures) > MAX_FAILURES_SHOWN:
        print(f"... and {len(writer.failures) - MAX_FAILURES_SHOWN} more", file=sys.stderr)
    closing = f"Scored {writer.scored} of {len(paths)} files with {model_dir} on the {device}: {writer.path}"
    if writer.failures:
        closing += f"; {len(writer.failures)} failed: {writer.failures_path}"
    print(closing)
    return 1 if writer.failures else 0


if __name__ == "__main__":
    sys.exit(main())
