"""Every private MLflow name the gated server uses exists in the installed MLflow."""

from __future__ import annotations

import pytest

from mlflow_green.registry import _mlflow_seams as seams


@pytest.mark.parametrize(
    ("module", "attribute", "purpose"), seams.SEAMS, ids=[f"{m}.{a}" for m, a, _ in seams.SEAMS]
)
def test_seam_exists(module: str, attribute: str, purpose: str) -> None:
    try:
        value = seams.resolve(module, attribute)
    except seams.SeamMissing as exc:
        if (module, attribute) in seams.UVICORN_SEAMS:
            pytest.skip(f"an MLflow release without the uvicorn server: {exc}")
        pytest.fail(f"{exc} (used to {purpose})")
    assert value is not None


@pytest.mark.parametrize(
    ("module", "attribute", "purpose"),
    seams.AUTH_SEAMS,
    ids=[f"{m}.{a}" for m, a, _ in seams.AUTH_SEAMS],
)
def test_auth_seam_exists(module: str, attribute: str, purpose: str) -> None:
    try:
        value = seams.auth(attribute)
    except seams.SeamMissing as exc:
        if attribute not in seams.AUTH_OPTIONAL:
            pytest.fail(f"{exc} (used to {purpose})")
        for stand_in in seams.AUTH_OPTIONAL[attribute]:
            assert seams.auth(stand_in) is not None, f"neither {attribute} nor its stand-in {stand_in}"
        return
    assert value is not None


def test_every_release_has_either_the_model_permission_or_its_stand_ins() -> None:
    names = ("_get_registered_model_permission", *seams.AUTH_OPTIONAL["_get_registered_model_permission"])
    present = []
    for name in names:
        try:
            seams.auth(name)
            present.append(name)
        except seams.SeamMissing:
            pass
    assert names[0] in present or set(names[1:]) <= set(present), present


def test_only_listed_auth_names_are_reached() -> None:
    with pytest.raises(KeyError, match="AUTH_SEAMS"):
        seams.auth("_some_private_helper")


def test_a_missing_seam_names_itself() -> None:
    with pytest.raises(
        seams.SeamMissing, match=r"mlflow\.server\.handlers\._no_such_name.*MLflow 3"
    ):
        seams.resolve("mlflow.server.handlers", "_no_such_name")


def test_no_other_module_imports_mlflow_server_internals() -> None:
    """Outside the seams module, only ``from mlflow.server import app`` (the documented base of a
    server plugin) is imported from MLflow's server, anywhere in the package."""
    import ast
    import pathlib

    import mlflow_green as pkg

    root = pathlib.Path(pkg.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "_mlflow_seams.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                ("mlflow.server", "mlflow.environment_variables")
            ):
                if node.module != "mlflow.server" or [a.name for a in node.names] != ["app"]:
                    offenders.append(f"{path.relative_to(root)}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(root)}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("mlflow.server")
                ]
    assert offenders == []


def test_the_handler_table_names_the_handlers_flask_routes() -> None:
    routed = {handler.__name__ for _, handler, _ in seams.endpoints()}
    table = {fn.__name__ for fn in seams.handler_table().values()}
    assert table & routed, "HANDLERS and get_endpoints() no longer share handler functions"
