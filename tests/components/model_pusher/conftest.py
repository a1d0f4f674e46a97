"""The SavedModel the pusher's tests push: the session's tiny exported model."""

import pytest


@pytest.fixture(scope="module")
def saved_model(tiny_model) -> str:
    return tiny_model.export_dir
