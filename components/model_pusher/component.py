"""ServingPusher: pushes a blessed model into a TF Serving model directory as the
next integer version, atomically, after a smoke test on a real image.

Inputs: ``model``, ``model_blessing`` (nothing is pushed unless blessed) and
``examples`` (the smoke test classifies the first image of ``smoke_split``).
Output: ``pushed_model`` with TFX's ``pushed``, ``pushed_destination`` and
``pushed_version`` properties.
"""

from typing import Optional

from tfx import types
from tfx.dsl.components.base import base_component, executor_spec
from tfx.types import standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import splits
from components.model_pusher import executor


class ServingPusherSpec(types.ComponentSpec):
    PARAMETERS = {
        executor.SERVING_BASE_DIR: ExecutionParameter(type=str),
        executor.MODEL_NAME: ExecutionParameter(type=str),
        executor.KEEP_VERSIONS: ExecutionParameter(type=int),
        executor.SERVER_BASE_PATH: ExecutionParameter(type=str, optional=True),
        executor.SMOKE_SPLIT: ExecutionParameter(type=str),
    }
    INPUTS = {
        executor.MODEL: ChannelParameter(type=standard_artifacts.Model),
        executor.MODEL_BLESSING: ChannelParameter(type=standard_artifacts.ModelBlessing),
        executor.EXAMPLES: ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {executor.PUSHED_MODEL: ChannelParameter(type=standard_artifacts.PushedModel)}


class ServingPusher(base_component.BaseComponent):
    SPEC_CLASS = ServingPusherSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

    def __init__(self, model: types.BaseChannel, model_blessing: types.BaseChannel, examples: types.BaseChannel,
                 serving_base_dir: str, model_name: str, keep_versions: int = 3,
                 server_base_path: Optional[str] = None, smoke_split: str = splits.EVAL):
        super().__init__(spec=ServingPusherSpec(
            model=model, model_blessing=model_blessing, examples=examples,
            pushed_model=types.Channel(type=standard_artifacts.PushedModel),
            serving_base_dir=serving_base_dir, model_name=model_name, keep_versions=keep_versions,
            server_base_path=server_base_path, smoke_split=smoke_split,
        ))
