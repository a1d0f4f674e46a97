"""predict.py: a served model over files, folders and globs, with bad files listed, not fatal."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import predict
from components import serving_signature
from pipeline import predictions
from tests.helpers import CLASS_COLOURS, encode_distinct_image, encode_image


def _images(root):
    """Good images of every format the model reads (one nested, one with a space and a
    non-Latin name), and files it must refuse."""
    root.mkdir()
    (root / "nested").mkdir()
    good = {}
    for number, (name, colour) in enumerate(CLASS_COLOURS.items()):
        for image_format in ("JPEG", "PNG"):
            path = root / f"{name} {number}.{image_format.lower()}"
            path.write_bytes(encode_distinct_image(colour, seed=number, image_format=image_format))
            good[str(path)] = path.read_bytes()
    for path, data in ((root / "nested" / "вишня.gif", encode_image((90, 20, 200), image_format="GIF")),
                       (root / "nested" / "old.bmp", encode_image((20, 90, 20), image_format="BMP"))):
        path.write_bytes(data)
        good[str(path)] = data
    jpeg = encode_image(size=(300, 200))
    bad = {
        str(root / "notes.txt"): b"not a picture\n",
        str(root / "truncated.jpg"): jpeg[: len(jpeg) // 3],
        str(root / "nested" / "photo.webp"): None,
        str(root / "empty.png"): b"",
    }
    for path, data in bad.items():
        if data is None:
            Image.new("RGB", (20, 20), (1, 2, 3)).save(path, "WEBP")
        else:
            with open(path, "wb") as f:
                f.write(data)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: not an input at all
    return good, bad


def _served(model_dir, encoded):
    outputs = tf.saved_model.load(model_dir).signatures[serving_signature.SERVING_DEFAULT](
        image_bytes=tf.constant(encoded))
    names = [n.decode() for n in outputs[serving_signature.CLASS_NAME].numpy()]
    return names, outputs[serving_signature.PROBABILITIES].numpy()


def test_a_folder_gets_one_row_per_image_as_serving_default_answers_and_bad_files_listed(tiny_model, tmp_path,
                                                                                       capsys):
    good, bad = _images(tmp_path / "photos")
    output = tmp_path / "out" / "predictions.csv"
    status = predict.main([str(tmp_path / "photos"), "--model", tiny_model.export_dir, "--output", str(output),
                           "--batch-size", "3", "--top-k", "2"])

    assert status == 1  # some files failed; the others were scored
    rows = {row["path"]: row for row in predictions.read_predictions(str(output))}
    assert set(rows) == set(good)
    names, probabilities = _served(tiny_model.export_dir, list(good.values()))
    for (path, _), name, expected in zip(good.items(), names, probabilities):
        assert rows[path]["class"] == name
        assert rows[path]["probability"] == pytest.approx(expected.max(), abs=1e-5)
        assert len(rows[path]["top_k"]) == 2 and rows[path]["top_k"][0][0] == name
    failures = {failure.path: failure.reason for failure in predictions.read_failures(str(output))}
    assert set(failures) == set(bad)
    assert "not an image" in failures[str(tmp_path / "photos" / "notes.txt")]
    assert "WEBP" in failures[str(tmp_path / "photos" / "nested" / "photo.webp")]
    assert failures[str(tmp_path / "photos" / "empty.png")] == "empty file"
    assert "jpeg" in failures[str(tmp_path / "photos" / "truncated.jpg")].lower()
    captured = capsys.readouterr()
    assert f"Scored {len(good)} of {len(good) + len(bad)} files" in captured.out
    assert f"{len(bad)} failed" in captured.out and "notes.txt" in captured.err


def test_jsonl_globs_and_the_model_folder_highest_version(tiny_model, tmp_path):
    good, _ = _images(tmp_path / "photos")
    model_root = tmp_path / "serving" / "image_classifier"
    model_root.mkdir(parents=True)
    for version in ("1", "3"):
        os.symlink(tiny_model.export_dir, model_root / version)
    (model_root / "10-staging").mkdir()  # not an integer version: not a candidate
    output = tmp_path / "p.jsonl"
    pattern = str(tmp_path / "photos" / "**" / "*.png")
    status = predict.main([pattern, "--model", str(model_root), "--output", str(output), "--top-k", "9"])

    assert status == 1  # the glob matched empty.png too
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    pngs = [path for path in good if path.endswith(".png")]
    assert [line["path"] for line in lines] == sorted(pngs)
    for line in lines:
        assert len(line["top_k"]) == len(tiny_model.labels)  # at most the class count
        assert sum(item["probability"] for item in line["top_k"]) == pytest.approx(1.0, abs=1e-4)
    assert [f.path for f in predictions.read_failures(str(output))] == [str(tmp_path / "photos" / "empty.png")]
    assert predict.resolve_model_dir(str(model_root)).endswith("/3")


@pytest.mark.parametrize("argv, message", [
    (["{images}", "--model", "{tmp}/nowhere"], "no such folder"),
    (["{images}", "--model", "{tmp}"], "neither a SavedModel"),
    (["{tmp}/missing/*.jpg", "--model", "{model}"], "No such file, folder or matching files"),
])
def test_what_cannot_start_exits_2_saying_what_is_wrong(tiny_model, tmp_path, capsys, argv, message):
    images = tmp_path / "photos"
    images.mkdir()
    (images / "a.png").write_bytes(encode_image(image_format="PNG"))
    values = {"images": str(images), "tmp": str(tmp_path), "model": tiny_model.export_dir}
    assert predict.main([arg.format(**values) for arg in argv]) == 2
    assert message in capsys.readouterr().err


def test_top_k_orders_by_probability_and_keeps_ties_in_class_order():
    assert predictions.top_k(np.array([0.2, 0.5, 0.3]), ["a", "b", "c"], 2) == [("b", 0.5), ("c", 0.3)]
    assert [name for name, _ in predictions.top_k([0.5, 0.5], ["x", "y"], 5)] == ["x", "y"]
