"""The ingest component's factory: the data folder is checked when the pipeline is built."""

import pytest

from components.image_ingest.component import create_image_example_gen


def test_missing_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        create_image_example_gen(str(tmp_path / "nope"))
