"""The gate: stops the pipeline before training when the validation report says so.

A step of its own, after the validator, so that the validator's report is a
published artifact (TFX discards the outputs of a failed execution) while a
failing gate still stops everything downstream of it.
"""

import json
import os

import tensorflow as tf
from tfx.dsl.component.experimental.annotations import InputArtifact
from tfx.dsl.component.experimental.decorators import component

from components.artifacts import ImageValidationReport
from components.image_validator import report as report_lib


class ImageValidationError(RuntimeError):
    """The gate stopped the pipeline: too many files rejected, or a class too small."""


def check_gate(report_dir: str) -> None:
    """Raises ImageValidationError, naming the report, when the gate failed."""
    with tf.io.gfile.GFile(os.path.join(report_dir, report_lib.REPORT_JSON)) as f:
        gate = json.load(f)["gate"]
    if not gate["passed"]:
        raise ImageValidationError(
            "Image validation stopped the pipeline before training: " + "; ".join(gate["failures"])
            + f". Every rejected file and its reason: {os.path.join(report_dir, report_lib.REPORT_MD)}"
        )


@component
def ImageValidationGate(report: InputArtifact[ImageValidationReport]):  # pylint: disable=invalid-name
    check_gate(report.uri)
