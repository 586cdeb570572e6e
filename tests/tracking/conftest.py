from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def green_autolog() -> Iterator[None]:
    """Undo autolog's patches after the test, whatever it configured."""
    import mlflow_green

    yield
    mlflow_green.autolog(disable=True)
