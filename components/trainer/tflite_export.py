"""TFLite twins of the trained model, for phones and edge devices, each measured on the eval split.

Written into ``<serving model>/tflite/`` (so the pushed version carries them;
TF Serving reads only ``saved_model.pb``, ``variables/`` and ``assets/`` of a
version folder and ignores the rest):

    model_float16.tflite   float16 weights, float32 compute (or model_float32.tflite)
    model_int8.tflite      full-integer: int8 weights and activations, calibrated on
                           training images; uint8 input and output
    labels.txt             the class names, one per line, in output order
    tflite.json            each model's input and output details and its figures

Each takes one uint8 RGB image of ``image_size`` x ``image_size`` ([1, H, W, 3]);
the ResNet50 preprocessing is inside.  The caller decodes and resizes (TFLite
has no JPEG decoder); ``docs/serving.md`` shows how.  The float models return
float32 probabilities; the int8 model returns uint8 ones, to be read with its
output scale and zero point.

Figures per model, on ``tflite_eval_images`` eval images (a sample stratified
by class, drawn by the run's seed; decoded and resized exactly as the
SavedModel does, then rounded to uint8): accuracy,
agreement (the share whose top class is the SavedModel's), the largest
probability difference from the SavedModel, file size, and the mean latency of
one image on this machine's CPU.  The int8 model is calibrated on
``tflite_calibration_images`` training images, sampled the same way; how many
images and classes each sample holds is in ``tflite.json``.
"""

import json
import os
import time
from collections.abc import Sequence
from typing import Any, Optional

import numpy as np
import tensorflow as tf
from absl import logging

from components import features, sampling
from components.example_records import sample_examples
from components.image_bytes import decode_and_resize
from components.serving_signature import LABELS_FILE
from components.trainer import model as model_lib
from components.trainer.params import TFLITE_KINDS, TrainParams

TFLITE_DIR = "tflite"
FIGURES_FILE = "tflite.json"
FLOAT16, FLOAT32, INT8 = TFLITE_KINDS


def model_file(kind: str) -> str:
    return f"model_{kind}.tflite"


def read_images(file_patterns, image_size: int, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` images of the examples ``file_patterns`` match (a sample stratified by class,
    drawn by ``seed``), decoded and resized as the served model does (float32, [n, size, size, 3]),
    and their labels (bytes)."""
    examples = sample_examples(file_patterns, count, seed)
    if not examples:
        return np.zeros((0, image_size, image_size, 3), np.float32), np.zeros((0,), object)
    encoded = [example.features.feature[features.IMAGE].bytes_list.value[0] for example in examples]
    labels = np.array([example.features.feature[features.LABEL].bytes_list.value[0] for example in examples],
                      dtype=object)
    images = tf.data.Dataset.from_tensor_slices(encoded).map(
        lambda data: decode_and_resize(data, image_size), num_parallel_calls=tf.data.AUTOTUNE).batch(64)
    return np.concatenate(list(images.as_numpy_iterator())), labels


def as_uint8(images: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def float32_twin(model: tf.keras.Model, build) -> tf.keras.Model:
    """``model`` itself when it computes in float32, else a float32 copy made by ``build()``:
    TFLite's kernels do not take the float16 activations of a mixed-precision model."""
    layers = [module for module in model.submodules if isinstance(module, tf.keras.layers.Layer)]
    if all(layer.compute_dtype in (None, "float32") for layer in layers):
        return model
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy("float32")
    try:
        twin = build()
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
    twin.set_weights(model.get_weights())
    return twin


def classify_function(model: tf.keras.Model, image_size: int):
    """The model on one float32 image [1, size, size, 3] in 0-255, as a concrete function
    (tracing ResNet50 takes seconds: ``convert`` reuses it for every kind)."""
    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.float32, name="image")])
    def classify(image):
        return {"probabilities": tf.cast(model(image, training=False), tf.float32)}

    return classify.get_concrete_function()


def _uint8_input(function, image_size: int):
    """``function`` taking uint8 pixels (a cast in front of the traced call)."""
    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], tf.uint8, name="image")])
    def classify(image):
        return function(tf.cast(image, tf.float32))

    return classify.get_concrete_function()


def _variables_of(model: tf.keras.Model) -> tf.Module:
    """What the converter saves beside ``function``: a plain module holding the model's variables,
    as the export does (given the Keras model, it would save the Keras object graph, tracing
    every layer again)."""
    holder = tf.Module()
    setattr(holder, model_lib.EXPORTED_VARIABLES, model_lib.exported_variables(model))
    return holder


def convert(model: tf.keras.Model, function, image_size: int, kind: str, calibration: np.ndarray) -> bytes:
    """The TFLite flatbuffer of ``model`` (``function``: its ``classify_function``) for ``kind``
    (``calibration``: uint8 training images, int8 only)."""
    variables = _variables_of(model)
    if kind == INT8:
        # Float input, quantized to uint8 by the converter from the calibration images' range.
        # One black and one white pixel in the first image make that range 0-255 (scale 1,
        # zero point 0: raw pixels go in as they are) without widening any other layer's
        # range, as whole black and white images would.
        converter = tf.lite.TFLiteConverter.from_concrete_functions([function], variables)
        samples = calibration.astype(np.float32)
        samples[0, 0, 0], samples[0, 0, -1] = 0.0, 255.0
        converter.representative_dataset = lambda: ([sample[None]] for sample in samples)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.uint8
    else:
        converter = tf.lite.TFLiteConverter.from_concrete_functions([_uint8_input(function, image_size)], variables)
        if kind == FLOAT16:
            converter.target_spec.supported_types = [tf.float16]
    converter.optimizations = [tf.lite.Optimize.DEFAULT] if kind != FLOAT32 else []
    return converter.convert()


class TFLiteClassifier:
    """One TFLite model, called on uint8 images; probabilities come back as float32."""

    def __init__(self, model_path: Optional[str] = None, num_threads: int = 0, model_content: Optional[bytes] = None):
        self.interpreter = tf.lite.Interpreter(model_path=model_path, model_content=model_content,
                                               num_threads=num_threads or os.cpu_count())
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Probabilities of one uint8 [H, W, 3] image."""
        value = image[None]
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.uint8:
            value = value.astype(self.input["dtype"])
        elif scale and (scale, zero_point) != (1.0, 0):  # pixels -> the input's quantized values
            value = np.clip(np.rint(value / scale + zero_point), 0, 255).astype(np.uint8)
        self.interpreter.set_tensor(self.input["index"], value)
        self.interpreter.invoke()
        output = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero_point = self.output["quantization"]
        if self.output["dtype"] != np.float32:
            return (output.astype(np.float32) - zero_point) * scale
        return output


def _details(detail: dict[str, Any]) -> dict[str, Any]:
    scale, zero_point = detail["quantization"]
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


def evaluate(flatbuffer: bytes, images: np.ndarray, labels: np.ndarray, reference: np.ndarray,
             label_names: Sequence[str]) -> dict[str, Any]:
    """The figures of one TFLite model against the SavedModel's probabilities ``reference``."""
    classifier = TFLiteClassifier(model_content=flatbuffer)
    pixels = as_uint8(images)
    probabilities, seconds = [], []
    for index, image in enumerate(pixels):
        start = time.perf_counter()
        probabilities.append(classifier(image))
        if index:  # the first call allocates and warms up
            seconds.append(time.perf_counter() - start)
    figures: dict[str, Any] = {
        "size_bytes": len(flatbuffer),
        "input": _details(classifier.input), "output": _details(classifier.output),
        "eval_images": len(pixels),
    }
    if len(pixels):
        probabilities = np.stack(probabilities)
        predicted = probabilities.argmax(axis=1)
        index = {name: i for i, name in enumerate(label_names)}
        truth = np.array([index.get(label.decode("utf-8"), -1) for label in labels])
        figures.update(
            accuracy=round(float(np.mean(predicted == truth)), 4),
            agreement=round(float(np.mean(predicted == reference.argmax(axis=1))), 4),
            max_probability_difference=round(float(np.max(np.abs(probabilities - reference))), 4),
            latency_ms=round(1000 * float(np.mean(seconds)), 3) if seconds else None,
        )
    return figures


def export_tflite(model: tf.keras.Model, build_float32, params: TrainParams, label_names: Sequence[str],
                  train_files, eval_files, serving_model_dir: str) -> dict[str, Any]:
    """Converts, writes and evaluates the TFLite models ``params.tflite`` asks for; returns the figures
    (also written to ``tflite/tflite.json``).  ``build_float32()`` builds an untrained twin of the
    model, used when the model computes in mixed precision."""
    kinds = params.tflite_kinds
    if not kinds:
        return {}
    out_dir = os.path.join(serving_model_dir, TFLITE_DIR)
    tf.io.gfile.makedirs(out_dir)
    with tf.io.gfile.GFile(os.path.join(out_dir, LABELS_FILE), "w") as f:
        f.write("".join(name + "\n" for name in label_names))
    float_model = float32_twin(model, build_float32)
    eval_images, eval_labels = read_images(eval_files, params.image_size, params.tflite_eval_images, params.seed)
    # The SavedModel's answer on the same decoded pixels (its serving_default is decode + this model).
    reference = float_model.predict(eval_images, batch_size=64, verbose=0) if len(eval_images) else eval_images
    figures: dict[str, Any] = {"image_size": params.image_size, "labels": LABELS_FILE, "models": {},
                               "eval_sample": sampling.describe(list(eval_labels)), "seed": params.seed}
    calibration = np.zeros((0, params.image_size, params.image_size, 3), np.uint8)
    if INT8 in kinds:
        calibration_images, calibration_labels = read_images(
            train_files, params.image_size, params.tflite_calibration_images, params.seed)
        calibration = as_uint8(calibration_images)
        figures["calibration_sample"] = sampling.describe(list(calibration_labels))
    function = classify_function(float_model, params.image_size)
    for kind in kinds:
        start = time.perf_counter()
        flatbuffer = convert(float_model, function, params.image_size, kind, calibration)
        path = os.path.join(out_dir, model_file(kind))
        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(flatbuffer)
        figures["models"][kind] = {"file": model_file(kind),
                                   **evaluate(flatbuffer, eval_images, eval_labels, reference, label_names)}
        figures["models"][kind]["convert_seconds"] = round(time.perf_counter() - start, 1)
        logging.info("TFLite %s: %s", kind, figures["models"][kind])
    with tf.io.gfile.GFile(os.path.join(out_dir, FIGURES_FILE), "w") as f:
        json.dump(figures, f, indent=1)
    return figures


def read_figures(serving_model_dir: str) -> dict[str, Any]:
    """What ``export_tflite`` wrote for a model (empty when it wrote nothing)."""
    path = os.path.join(serving_model_dir, TFLITE_DIR, FIGURES_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)
