"""The image ingest component: TFX's FileBasedExampleGen with our Beam executor.

The data folder's layout (``components/image_folder.py``) is read when the
pipeline is built, as TFX fixes split names then.  Split folders are kept as
they are; a folder of class folders is split by a hash of the seed and each
file's relative path (TFX's hash buckets), so one seed gives one split, and a
file stays in its split however the folder grows.

``create_predict_example_gen`` reads a folder of unlabelled images (the ones to
score after training) into one ``predict`` split.

Outputs: ``examples`` (one ``tf.Example`` per listed file: a reference to it, which
the image validator reads) and ``listing`` (what the listing read and left out,
for the validator's report).
"""

from typing import Optional

from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from components import artifacts, image_folder, splits
from components.image_ingest import executor
from components.image_ingest.driver import ImageFolderDriver


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters, plus the seed of the hash split; its
    output, plus what the listing read and left out."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.SPLIT_SEED_KEY: ExecutionParameter(type=int),
        executor.FOLLOW_OUTSIDE_LINKS_KEY: ExecutionParameter(type=int, optional=True),
        executor.UNLABELLED_KEY: ExecutionParameter(type=int, optional=True),
        executor.REFERENCE_FORMAT_KEY: ExecutionParameter(type=int, optional=True),
    }
    OUTPUTS = {
        **standard_component_specs.FileBasedExampleGenSpec.OUTPUTS,
        executor.LISTING_KEY: ChannelParameter(type=artifacts.ImageFolderListing),
    }


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen whose driver fingerprints what the listing policy
    ingests, and whose hash split takes a seed."""

    SPEC_CLASS = ImageExampleGenSpec
    DRIVER_CLASS = ImageFolderDriver

    def __init__(self, input_base: str, input_config, output_config, split_seed: int,
                 follow_outside_links: bool = False, unlabelled: bool = False):
        spec = ImageExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            split_seed=split_seed,
            follow_outside_links=int(follow_outside_links),
            unlabelled=int(unlabelled),
            reference_format=executor.REFERENCE_FORMAT,
            examples=channel.Channel(type=standard_artifacts.Examples),
            listing=channel.Channel(type=artifacts.ImageFolderListing),
        )
        # FileBasedExampleGen's own __init__ builds its spec without the seed.
        base_component.BaseComponent.__init__(
            self, spec=spec, custom_executor_spec=executor_spec.BeamExecutorSpec(executor.Executor)
        )


def create_image_example_gen(
    data_dir: str, train_hash_buckets: int = 4, eval_hash_buckets: int = 1, layout_dir: Optional[str] = None,
    split_seed: int = 0, follow_outside_links: bool = False,
) -> ImageExampleGen:
    """Returns the ingest component for ``data_dir`` (see the module docstring).

    The split folders are read from ``layout_dir`` (default ``data_dir``): a
    local copy of a folder the machine building the pipeline cannot see.
    ``follow_outside_links``: read what links leaving the data folder point to
    (by default they are reported, not read).
    """
    if train_hash_buckets < 1 or eval_hash_buckets < 1:
        raise ValueError(
            f"Hash buckets must be positive, got train={train_hash_buckets}, eval={eval_hash_buckets}."
        )
    split_folders = image_folder.detect_split_folders(layout_dir or data_dir)
    if split_folders:
        input_config = tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=name, pattern=f"{folder}/{image_folder.PATTERN_SUFFIX}")
                for name, folder in split_folders.items()
            ]
        )
        # Several split folders are kept as they are; a lone one is hash-split as TFX does.
        output_config = example_gen_utils.make_default_output_config(input_config)
    else:
        input_config = tfx.proto.Input(
            splits=[tfx.proto.Input.Split(name="single_split", pattern=image_folder.PATTERN_SUFFIX)])
        output_config = tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name=splits.TRAIN, hash_buckets=train_hash_buckets),
                    tfx.proto.SplitConfig.Split(name=splits.EVAL, hash_buckets=eval_hash_buckets),
                ],
            )
        )
    return ImageExampleGen(
        input_base=data_dir, input_config=input_config, output_config=output_config, split_seed=split_seed,
        follow_outside_links=follow_outside_links,
    ).with_id("ImageExampleGen")


def create_predict_example_gen(predict_dir: str, follow_outside_links: bool = False) -> ImageExampleGen:
    """The ingest component for a folder of unlabelled images to score: one ``predict``
    split of every file in it, at any depth, each with an empty label."""
    input_config = tfx.proto.Input(
        splits=[tfx.proto.Input.Split(name=splits.PREDICT, pattern=image_folder.PATTERN_SUFFIX)])
    # One input split and one output split of one hash bucket: everything lands in ``predict``.
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name=splits.PREDICT, hash_buckets=1)]))
    return ImageExampleGen(
        input_base=predict_dir, input_config=input_config, output_config=output_config, split_seed=0,
        follow_outside_links=follow_outside_links, unlabelled=True,
    ).with_id("PredictExampleGen")
