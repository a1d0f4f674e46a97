"""The ImageValidator component: spec, artifact type and component class."""

import json
from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components.artifacts import ImageFolderListing, ImageValidationReport
from components.image_validator import executor
from components.image_validator.policy import ValidationPolicy


class ImageValidatorSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.POLICY_KEY: ExecutionParameter(type=str),
        # The seed of the validated examples' order (optional: 0).
        executor.SEED_KEY: ExecutionParameter(type=int, optional=True),
    }
    INPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema, optional=True),
        # Without it, the report counts only the files that became examples.
        executor.LISTING_KEY: ChannelParameter(type=ImageFolderListing, optional=True),
    }
    OUTPUTS = {
        executor.VALIDATED_EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.REPORT_KEY: ChannelParameter(type=ImageValidationReport),
    }


class ImageValidator(base_beam_component.BaseBeamComponent):
    """Reads, decodes and checks every ingested file; passes on only the accepted images,
    in shards and in an order shuffled by ``seed``.

    Stops the pipeline (the gate) when too many files are rejected or a class
    has too few usable training images; the report names every file and reason.
    """

    SPEC_CLASS = ImageValidatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples: types.BaseChannel,
        policy: ValidationPolicy,
        schema: Optional[types.BaseChannel] = None,
        listing: Optional[types.BaseChannel] = None,
        seed: int = 0,
    ):
        if not isinstance(policy, ValidationPolicy):
            raise ValueError(f"policy must be a ValidationPolicy, got {type(policy).__name__}.")
        spec = ImageValidatorSpec(
            examples=examples,
            schema=schema,
            listing=listing,
            policy=json.dumps(policy.to_dict(), sort_keys=True),
            seed=seed,
            validated_examples=types.Channel(type=standard_artifacts.Examples),
            report=types.Channel(type=ImageValidationReport),
        )
        super().__init__(spec=spec)
