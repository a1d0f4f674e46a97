"""Driver of the ingest component: decides whether the data changed since the last run.

TFX's FileBasedExampleGen fingerprints the files its glob patterns match
(``*/*``), which misses nested folders and fails on a dangling link.  This
driver fingerprints exactly what the listing policy ingests instead.  Spans and
versions in split patterns are not supported (there is one span, 0).
"""

from collections.abc import Iterable
from typing import Optional

from tfx.components.example_gen import driver, input_processor
from tfx.proto import example_gen_pb2, range_config_pb2

from components import image_folder


class ImageFolderInputProcessor(input_processor.FileBasedInputProcessor):
    def resolve_span_and_version(self) -> tuple[int, Optional[int]]:
        self._fingerprint = "\n".join(
            image_folder.fingerprint(self._input_base_uri, image_folder.split_folder_of(split.pattern))
            for split in self._splits
        )
        return 0, None


class ImageFolderDriver(driver.FileBasedDriver):
    def get_input_processor(
        self,
        splits: Iterable[example_gen_pb2.Input.Split],
        range_config: Optional[range_config_pb2.RangeConfig] = None,
        input_base_uri: Optional[str] = None,
    ) -> input_processor.InputProcessor:
        if range_config is not None:
            raise ValueError("The image ingest component does not support range_config (spans).")
        return ImageFolderInputProcessor(input_base_uri, splits)
