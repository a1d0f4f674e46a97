"""The image ingest component: TFX's FileBasedExampleGen with our Beam executor.

Two folder layouts are read:

* ``<root>/<class>/<file>``: one input; examples are split by a hash of the
  seed and their relative path (TFX's hash buckets), so one seed gives one
  split, and a file stays in its split however the folder grows.
* ``<root>/<split>/<class>/<file>``: the folders' own splits are kept.
  ``train`` is the training split; ``val``, ``validation`` or ``eval`` becomes
  TFX's ``eval`` split (``test`` does when there is none of those); a ``test``
  folder beside a validation folder is kept as the ``test`` split.

The layout is read when the pipeline is built (TFX fixes split names then).
"""

import os
import posixpath
from typing import Optional

import tensorflow as tf
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import utils as example_gen_utils
from tfx.dsl.components.base import base_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import channel, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components.image_ingest import executor, listing
from components.image_ingest.driver import ImageFolderDriver

TRAIN, EVAL, TEST = "train", "eval", "test"
_EVAL_FOLDERS = ("val", "validation", "eval")
_SPLIT_FOLDERS = frozenset(("train", "test") + _EVAL_FOLDERS)


def _subfolders(path: str) -> list[str]:
    if "://" not in path:  # os, not tf.io.gfile: a local name need not be UTF-8
        return sorted(n for n in os.listdir(path) if os.path.isdir(os.path.join(path, n)) and not n.startswith("."))
    return sorted(
        name.rstrip("/")
        for name in tf.io.gfile.listdir(path)
        if tf.io.gfile.isdir(posixpath.join(path, name)) and not name.startswith(".")
    )


def detect_split_folders(data_dir: str) -> Optional[dict[str, str]]:
    """Maps TFX split name to folder when ``data_dir`` holds split folders, else None.

    Raises ValueError for a folder that is missing, empty, or mixes split folders
    with class folders.
    """
    if not tf.io.gfile.isdir(data_dir):
        raise ValueError(f"Data directory {data_dir!r} does not exist or is not a directory.")
    folders = _subfolders(data_dir)
    if not folders:
        raise ValueError(
            f"Data directory {data_dir!r} has no sub-folders: expected "
            "<data_dir>/<class>/<image> or <data_dir>/<split>/<class>/<image>."
        )
    split_like = [f for f in folders if f in _SPLIT_FOLDERS]
    if not split_like or (len(split_like) == 1 and len(folders) > 1):
        return None  # class folders; a single class named like a split is still a class
    if len(split_like) != len(folders):
        raise ValueError(
            f"Data directory {data_dir!r} mixes split folders {split_like} with other "
            f"folders {sorted(set(folders) - set(split_like))}; use either "
            "<split>/<class>/<image> or <class>/<image>."
        )
    if "train" not in folders:
        raise ValueError(f"Data directory {data_dir!r} has split folders {folders} but no 'train'.")
    eval_folder = next((f for f in _EVAL_FOLDERS if f in folders), None)
    splits = {TRAIN: "train"}
    if eval_folder:
        splits[EVAL] = eval_folder
        if "test" in folders:
            splits[TEST] = "test"
    elif "test" in folders:
        splits[EVAL] = "test"
    else:
        raise ValueError(
            f"Data directory {data_dir!r} has a 'train' folder but no evaluation folder "
            f"(one of {', '.join(_EVAL_FOLDERS + ('test',))})."
        )
    return splits


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
    """FileBasedExampleGen's parameters, plus the seed of the hash split."""

    PARAMETERS = {
        **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
        executor.SPLIT_SEED_KEY: ExecutionParameter(type=int),
        executor.FOLLOW_OUTSIDE_LINKS_KEY: ExecutionParameter(type=int, optional=True),
    }


class ImageExampleGen(FileBasedExampleGen):
    """FileBasedExampleGen whose driver fingerprints what the listing policy
    ingests, and whose hash split takes a seed."""

    SPEC_CLASS = ImageExampleGenSpec
    DRIVER_CLASS = ImageFolderDriver

    def __init__(self, input_base: str, input_config, output_config, split_seed: int,
                 follow_outside_links: bool = False):
        spec = ImageExampleGenSpec(
            input_base=input_base,
            input_config=input_config,
            output_config=output_config,
            output_data_format=example_gen_pb2.FORMAT_TF_EXAMPLE,
            output_file_format=example_gen_pb2.FORMAT_TFRECORDS_GZIP,
            split_seed=split_seed,
            follow_outside_links=int(follow_outside_links),
            examples=channel.Channel(type=standard_artifacts.Examples),
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
    split_folders = detect_split_folders(layout_dir or data_dir)
    if split_folders:
        input_config = tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name=name, pattern=f"{folder}/{listing.PATTERN_SUFFIX}")
                for name, folder in split_folders.items()
            ]
        )
        # Several split folders are kept as they are; a lone one is hash-split as TFX does.
        output_config = example_gen_utils.make_default_output_config(input_config)
    else:
        input_config = tfx.proto.Input(
            splits=[tfx.proto.Input.Split(name="single_split", pattern=listing.PATTERN_SUFFIX)])
        output_config = tfx.proto.Output(
            split_config=tfx.proto.SplitConfig(
                splits=[
                    tfx.proto.SplitConfig.Split(name=TRAIN, hash_buckets=train_hash_buckets),
                    tfx.proto.SplitConfig.Split(name=EVAL, hash_buckets=eval_hash_buckets),
                ],
            )
        )
    return ImageExampleGen(
        input_base=data_dir, input_config=input_config, output_config=output_config, split_seed=split_seed,
        follow_outside_links=follow_outside_links,
    ).with_id("ImageExampleGen")
