"""The exported SavedModel: its signatures on raw bytes, examples and TF Serving's REST body,
its labels asset, and serving's refusal of bytes that are not an image."""

import base64
import json
import struct
import time

import numpy as np
import pytest
import tensorflow as tf

from components import features, image_bytes
from components import serving_signature as contract
from components.example_records import image_to_example
from tests.helpers import CLASS_COLOURS, encode_image


@pytest.fixture(scope="module")
def exported(tiny_model):
    """The Keras model, the SavedModel exported from it as run_fn exports it, loaded, and its labels."""
    return tiny_model.keras_model, tf.saved_model.load(tiny_model.export_dir), tiny_model.labels


def test_serving_default_takes_raw_bytes_and_matches_the_keras_model(exported):
    """Parity: the served probabilities equal the Keras model's on the same preprocessed tensor."""
    model, loaded, label_names = exported
    images = [
        encode_image((200, 30, 30), size=(50, 40), image_format="JPEG"),
        encode_image((30, 200, 30), size=(20, 60), image_format="PNG"),
        encode_image((30, 30, 200), size=(33, 33), image_format="GIF"),
        encode_image((90, 90, 90), size=(64, 48), image_format="PNG", mode="RGBA"),
        encode_image((120, 60, 10), size=(1000, 700), image_format="BMP"),
        encode_image((120, 60, 10), size=(17, 300), image_format="JPEG", mode="L"),
        encode_image((10, 160, 90), size=(45, 45), image_format="PNG", mode="LA"),
        encode_image((10, 160, 90), size=(31, 29), image_format="BMP", mode="L"),
    ]
    outputs = loaded.signatures[contract.SERVING_DEFAULT](image_bytes=tf.constant(images))

    expected = model(tf.stack([image_bytes.decode_and_resize(b, 32) for b in images]), training=False).numpy()
    np.testing.assert_allclose(outputs[contract.PROBABILITIES].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(outputs[contract.PROBABILITIES].numpy().sum(axis=1), 1.0, atol=1e-5)
    indices = outputs[contract.CLASS_INDEX].numpy()
    np.testing.assert_array_equal(indices, expected.argmax(axis=1))
    assert [n.decode() for n in outputs[contract.CLASS_NAME].numpy()] == [label_names[i] for i in indices]


def test_top_k_lists_classes_by_probability(exported):
    _, loaded, label_names = exported
    outputs = loaded.signatures[contract.SERVING_DEFAULT](image_bytes=tf.constant([encode_image(), encode_image()]))
    probabilities = outputs[contract.PROBABILITIES].numpy()
    top_names = outputs[contract.TOP_K_CLASS_NAMES].numpy()
    top_probabilities = outputs[contract.TOP_K_PROBABILITIES].numpy()
    assert top_names.shape == (2, 3)  # k is capped at the number of classes
    for row in range(2):
        order = np.argsort(-probabilities[row])
        assert [n.decode() for n in top_names[row]] == [label_names[i] for i in order]
        np.testing.assert_allclose(top_probabilities[row], probabilities[row][order], atol=1e-7)
        assert top_names[row][0] == outputs[contract.CLASS_NAME].numpy()[row]


def test_labels_file_is_an_asset_of_the_saved_model(exported, tmp_path_factory):
    _, loaded, label_names = exported
    export_dir = loaded.labels_asset.asset_path.numpy().decode().rsplit("/assets/", 1)[0]
    assert contract.read_labels(export_dir) == label_names


def rest_request_to_tensors(body: str, signature) -> dict:
    """Decodes a TF Serving REST ``predict`` body the way the server does.

    Row format: ``instances`` is a list with one item per example; with a single
    named input an item is the value itself, and ``{"b64": ...}`` stands for bytes.
    """
    def decode(value):
        if isinstance(value, dict) and set(value) == {"b64"}:
            return base64.b64decode(value["b64"])
        return value

    instances = json.loads(body)["instances"]
    input_names = list(signature.structured_input_signature[1])
    if len(input_names) == 1 and not (isinstance(instances[0], dict) and input_names[0] in instances[0]):
        return {input_names[0]: tf.constant([decode(item) for item in instances])}
    return {name: tf.constant([decode(item[name]) for item in instances]) for name in input_names}


def test_a_tf_serving_rest_body_with_base64_images_is_answered(exported):
    _, loaded, _ = exported
    signature = loaded.signatures[contract.SERVING_DEFAULT]
    images = [encode_image((200, 30, 30)), encode_image((30, 30, 200), image_format="PNG")]
    direct = signature(image_bytes=tf.constant(images))
    for instances in (
        [{"b64": base64.b64encode(image).decode("ascii")} for image in images],
        [{"image_bytes": {"b64": base64.b64encode(image).decode("ascii")}} for image in images],
    ):
        body = json.dumps({"signature_name": contract.SERVING_DEFAULT, "instances": instances})
        answer = signature(**rest_request_to_tensors(body, signature))
        np.testing.assert_allclose(answer[contract.PROBABILITIES].numpy(), direct[contract.PROBABILITIES].numpy())
        assert answer[contract.CLASS_NAME].numpy().tolist() == direct[contract.CLASS_NAME].numpy().tolist()


def test_examples_signatures_agree_with_raw_bytes(exported):
    _, loaded, _ = exported
    data = [encode_image(colour, image_format="JPEG") for colour in CLASS_COLOURS.values()]
    serialized = [image_to_example(f"x/{i}.jpg", d).SerializeToString() for i, d in enumerate(data)]
    from_examples = loaded.signatures[contract.SERVING_EXAMPLES](examples=tf.constant(serialized))
    from_bytes = loaded.signatures[contract.SERVING_DEFAULT](image_bytes=tf.constant(data))
    np.testing.assert_allclose(
        from_examples[contract.PROBABILITIES].numpy(), from_bytes[contract.PROBABILITIES].numpy(), atol=1e-6
    )
    # BulkInferrer's signature: the same numbers, and no string output.
    scored = loaded.signatures[contract.SCORE_EXAMPLES](examples=tf.constant(serialized))
    assert set(scored) == {contract.PROBABILITIES, contract.CLASS_INDEX}
    np.testing.assert_allclose(scored[contract.PROBABILITIES].numpy(), from_bytes[contract.PROBABILITIES].numpy(),
                               atol=1e-6)


def test_transform_features_signature_maps_labels_with_the_vocabulary(exported):
    _, loaded, label_names = exported
    serialized = [
        image_to_example(f"{name}/x.jpg", encode_image()).SerializeToString() for name in label_names + ["unseen"]
    ]
    label_ids = loaded.signatures[contract.TRANSFORM_FEATURES](examples=tf.constant(serialized))[features.LABEL_ID]
    assert label_ids.numpy().reshape(-1).tolist() == [0, 1, 2, -1]


def _png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size its data does not have (a decompression bomb)."""
    real = encode_image(size=(4, 4), image_format="PNG")
    return real[:16] + struct.pack(">II", width, height) + real[24:]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"<html>not an image</html>", "Not a JPEG, PNG, GIF or BMP"),
        (b"", "Not a JPEG, PNG, GIF or BMP"),
        (b"\xff\xd8\xff", "JPEG"),
        (encode_image(size=(64, 64))[:300], "JPEG"),
        (encode_image(image_format="PNG")[:40], "PNG"),
        (_png_header_claiming(100_000, 100_000), "more than"),
        (b"GIF89a" + b"\x00" * 10, "GIF"),
        (b"BM" + b"\x00" * 60, "channels"),  # what the BMP decoder says of a zeroed header
    ],
    ids=["text", "empty", "jpeg-magic-only", "truncated-jpeg", "truncated-png", "png-bomb", "bad-gif", "bad-bmp"],
)
def test_serving_rejects_bytes_that_are_not_an_image(exported, data, reason):
    """A clear InvalidArgument for the bad item, even in a batch with good ones; no crash, no hang."""
    _, loaded, _ = exported
    batch = tf.constant([encode_image(), data])
    started = time.monotonic()
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        loaded.signatures[contract.SERVING_DEFAULT](image_bytes=batch)
    assert reason.lower() in str(error.value).lower()
    assert time.monotonic() - started < 30
    # The model still answers afterwards.
    assert loaded.signatures[contract.SERVING_DEFAULT](image_bytes=batch[:1])[contract.CLASS_NAME].shape == (1,)
