"""Every private MLflow name the gated server uses exists in the installed MLflow."""

from __future__ import annotations

import pytest

from mlflow_green.registry import _mlflow_seams as seams


@pytest.mark.parametrize(("module", "attribute", "purpose"), seams.SEAMS, ids=[f"{m}.{a}" for m, a, _ in seams.SEAMS])
def test_seam_exists(module: str, attribute: str, purpose: str) -> None:
    try:
        value = seams.resolve(module, attribute)
    except seams.SeamMissing as exc:
        if (module, attribute) in seams.UVICORN_SEAMS:
            pytest.skip(f"an MLflow release without the uvicorn server: {exc}")
        pytest.fail(f"{exc} (used to {purpose})")
    assert value is not None


def test_a_missing_seam_names_itself() -> None:
    with pytest.raises(seams.SeamMissing, match=r"mlflow\.server\.handlers\._no_such_name.*MLflow 3"):
        seams.resolve("mlflow.server.handlers", "_no_such_name")


def test_no_other_registry_module_imports_mlflow_server() -> None:
    import pathlib

    import mlflow_green.registry as pkg

    root = pathlib.Path(pkg.__file__).parent
    offenders = [
        p.name
        for p in root.glob("*.py")
        if p.name not in ("_mlflow_seams.py", "app_auth.py", "app.py")
        and ("mlflow.server" in p.read_text() or "mlflow.environment_variables" in p.read_text())
    ]
    assert offenders == []


def test_the_handler_table_names_the_handlers_flask_routes() -> None:
    routed = {handler.__name__ for _, handler, _ in seams.endpoints()}
    table = {fn.__name__ for fn in seams.handler_table().values()}
    assert table & routed, "HANDLERS and get_endpoints() no longer share handler functions"
