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
    with pytest.raises(compat.MissingMlflowName, match=r"mlflow\.tracking\.fluent\._no_such_name.*MLflow 3\."):
        compat.require("gone")


def test_pop_active_run_forgets_the_run_without_ending_it(mlflow_local: str) -> None:
    import mlflow

    run = mlflow.start_run()
    compat.pop_active_run(run.info.run_id)
    assert mlflow.active_run() is None
    assert mlflow.MlflowClient().get_run(run.info.run_id).info.status == "RUNNING"


def test_active_experiment_id_follows_set_experiment(mlflow_local: str, monkeypatch: pytest.MonkeyPatch) -> None:
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
        compat.http_request(creds, "/health", "GET", max_retries=0, backoff_factor=0, backoff_jitter=0, timeout=1)
    from mlflow_green.tracking.failures import is_transient

    assert is_transient(info.value)
