"""One test per undocumented MLflow name the package uses: a release without it fails here,
with a message naming it (``make test-compat`` runs these on the oldest and newest MLflow 3.x)."""

from __future__ import annotations

import pytest

from mlflow_green.tracking import _mlflow_compat as compat


@pytest.mark.parametrize("name", sorted(compat.PRIVATE_NAMES))
def test_each_private_mlflow_name_exists(name: str) -> None:
    import mlflow

    try:
        compat.require(name)
    except compat.MissingMlflowName as exc:
        pytest.fail(f"MLflow {mlflow.__version__} lacks {name}: {exc}")


def test_a_missing_name_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compat.PRIVATE_NAMES, "gone", ("mlflow.tracking.fluent", "_no_such_name"))
    with pytest.raises(
        compat.MissingMlflowName, match=r"mlflow\.tracking\.fluent\._no_such_name.*MLflow 3\."
    ):
        compat.require("gone")


def test_pop_active_run_forgets_the_run_without_ending_it(mlflow_local: str) -> None:
    import mlflow

    run = mlflow.start_run()
    compat.pop_active_run(run.info.run_id)
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"


def test_active_experiment_id_follows_set_experiment(
    mlflow_local: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.tracking import fluent

    # set_experiment also exports MLFLOW_EXPERIMENT_ID on some releases: undone after the test.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "0")  # recorded: restored (absent) afterwards
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID")
    monkeypatch.setattr(fluent, "_active_experiment_id", None)

    experiment = mlflow.set_experiment("compat-probe")
    assert compat.active_experiment_id() == experiment.experiment_id


def test_context_tags_and_host_creds_and_http_request(mlflow_local: str) -> None:
    tags = compat.resolve_context_tags({"mine": "1"})
    assert tags["mine"] == "1" and "mlflow.user" in tags
    creds = compat.host_creds("http://127.0.0.1:9")
    assert creds.host == "http://127.0.0.1:9"
    with pytest.raises(Exception) as info:
        compat.http_request(
            creds, "/health", "GET", max_retries=0, backoff_factor=0, backoff_jitter=0, timeout=1
        )
    from mlflow_green.tracking.failures import is_transient

    assert is_transient(info.value)


@pytest.mark.parametrize("name", sorted(compat.PRIVATE_ATTRIBUTES))
def test_each_private_client_attribute_exists(name: str, mlflow_local: str) -> None:
    """The instance attributes read off an ``MlflowClient`` exist on this MLflow release."""
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=mlflow_local, registry_uri=mlflow_local)
    value: object = client
    for part in compat.PRIVATE_ATTRIBUTES[name][1].split("."):
        assert hasattr(value, part), (
            f"MLflow {mlflow.__version__}: MlflowClient has no {part} ({name})"
        )
        value = getattr(value, part)
    assert compat.registry_uri(client) == mlflow_local
    assert compat.tracking_store(client) is not None


def test_a_client_without_a_registry_uri_is_one_clear_error() -> None:
    with pytest.raises(compat.MissingMlflowName, match=r"MlflowClient\._registry_uri"):
        compat.registry_uri(object())


def test_the_ledger_reads_tables_only_of_mlflows_own_sql_store(mlflow_local: str) -> None:
    import mlflow

    store = compat.tracking_store(mlflow.MlflowClient(tracking_uri=mlflow_local))
    tables = compat.plain_sql_tables(store)
    assert tables is not None and {"run", "metric", "tag"} == set(tables)
    assert {"run_uuid", "key", "value", "step"} <= {c.name for c in tables["metric"].columns}
    subclass = type("Scoped", (type(store),), {"search_runs": lambda self, *a, **k: None})
    assert compat.plain_sql_tables(object.__new__(subclass)) is None
    assert compat.plain_sql_tables(object()) is None


def test_no_module_outside_the_two_seam_modules_reaches_mlflow_internals() -> None:
    """Every undocumented MLflow name lives in ``tracking/_mlflow_compat.py`` (client side) or
    ``registry/_mlflow_seams.py`` (server side): elsewhere the package imports only MLflow's
    documented modules and reads no private attribute of an MLflow object."""
    import ast
    import pathlib

    import mlflow_green

    public = {
        "mlflow",
        "mlflow.exceptions",
        "mlflow.entities",
        "mlflow.entities.model_registry",
        "mlflow.tracking",
    }
    root = pathlib.Path(mlflow_green.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("_mlflow_compat.py", "_mlflow_seams.py"):
            continue
        where = str(path.relative_to(root))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mlflow":
                module = node.module or ""
                names = [a.name for a in node.names]
                if module == "mlflow.server" and names == ["app"]:
                    continue  # MLflow's documented base app for a server plugin
                if module not in public or any(n.startswith("_") for n in names):
                    offenders.append(
                        f"{where}:{node.lineno} from {module} import {', '.join(names)}"
                    )
            elif isinstance(node, ast.Import):
                offenders += [
                    f"{where}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name.startswith("mlflow.")
                ]
            elif isinstance(node, ast.Attribute) and node.attr in {
                "_tracking_client",
                "_registry_uri",
                "_get_registry_client",
                "_active_run_stack",
                "_active_experiment_id",
            }:
                offenders.append(f"{where}:{node.lineno} .{node.attr}")
    assert offenders == [], "MLflow internals outside the seam modules:\n" + "\n".join(offenders)
