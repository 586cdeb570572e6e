"""The measured footprint of a model version: its source run's final ``green/`` totals (plus lineage).

The same code runs in the client (``MlflowClient``) and inside the gated server (the server's own
stores); :class:`Backend` hides the difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from mlflow_green.registry._sql import (
    fast_registry,
    fast_tracking,
    read_model_and_version,
    read_model_version_and_run,
    read_run,
)
from mlflow_green.tracking import schema

__all__ = [
    "Backend",
    "ClientBackend",
    "Footprint",
    "RunFootprint",
    "StoreBackend",
    "footprint_of_source",
    "model_version_footprint",
    "resolve_source_run",
]

PARENT_RUN_TAG = "mlflow.parentRunId"
_MAX_COPY_DEPTH = 16
_SEARCH_PAGE = 1000


class Backend(Protocol):
    """What the footprint and the gate read and write; the client and the server stores differ."""

    def get_run(self, run_id: str) -> Any: ...
    def metric_history(self, run_id: str, key: str) -> list[float]: ...
    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        """Each key's largest finite value over the run's history; keys never logged are absent."""
        ...

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]: ...
    def get_logged_model(self, model_id: str) -> Any: ...
    def get_model_version(self, name: str, version: str) -> Any: ...
    def get_model_version_by_alias(self, name: str, alias: str) -> Any: ...
    def get_registered_model(self, name: str) -> Any: ...
    def registered_model_tags(self, name: str) -> dict[str, str]:
        """The registered model's tags; MLflow's RESOURCE_DOES_NOT_EXIST when there is no model."""
        ...

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...


def _all_child_runs(search: Any, experiment_id: str, parent_run_id: str) -> list[Any]:
    from mlflow.entities import ViewType

    runs: list[Any] = []
    token = None
    # Deleted runs consumed energy too: a sweep's cost does not vanish when a trial is deleted.
    flt = f"tags.`{PARENT_RUN_TAG}` = '{parent_run_id}'"
    while True:
        page = search([experiment_id], flt, ViewType.ALL, _SEARCH_PAGE, None, token)
        runs.extend(page)
        token = getattr(page, "token", None)
        if not token:
            return runs


def _maxima_from_histories(backend: Backend, run_id: str, keys: Iterable[str]) -> dict[str, float]:
    """Generic :meth:`Backend.metric_maxima`: one history read per key."""
    out: dict[str, float] = {}
    for key in keys:
        values = [v for v in backend.metric_history(run_id, key) if math.isfinite(v)]
        if values:
            out[key] = max(values)
    return out


def _sql_tracking_store(store: Any) -> Any:
    """``store`` when it is MLflow's SQLAlchemy tracking store, else None."""
    try:
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without its SQL extras
        return None
    if isinstance(store, SqlAlchemyStore) and hasattr(store, "_get_run"):
        return store
    return None


def _sql_registry_store(store: Any) -> Any:
    """``store`` when it is MLflow's SQLAlchemy model registry store, else None."""
    try:
        from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore
    except ImportError:  # pragma: no cover - MLflow without its SQL extras
        return None
    if isinstance(store, SqlAlchemyStore) and all(
        hasattr(store, a) for a in ("_get_sql_model_version", "_get_registered_model")
    ):
        return store
    return None


def _sql_metric_maxima(store: Any, session: Any, run_id: str, keys: list[str]) -> dict[str, float]:
    """The maximum of each metric's history in one ``GROUP BY`` query.

    MLflow stores NaN as ``value=0, is_nan=true`` (skipped here, as the generic path skips
    non-finite values) and ±inf as ±float max, which the generic path also reads back as finite.
    """
    import sqlalchemy as sa
    from mlflow.store.tracking.dbmodels.models import SqlMetric

    validate = getattr(store, "_validate_run_accessible", None)
    if validate is not None:  # the workspace hook get_metric_history calls too
        validate(session, run_id)
    rows = (
        session.query(SqlMetric.key, sa.func.max(SqlMetric.value))
        .filter(
            SqlMetric.run_uuid == run_id,
            SqlMetric.key.in_(keys),
            SqlMetric.is_nan == sa.false(),
        )
        .group_by(SqlMetric.key)
        .all()
    )
    return {key: float(value) for key, value in rows if value is not None}


_WRITE_ATTEMPTS = 3


def _write_conflict(exc: BaseException) -> bool:
    """A write that lost a race: a concurrent request inserted the same tag row first
    (UNIQUE violation), or SQLite refused the lock upgrade ("database is locked")."""
    try:
        from sqlalchemy.exc import IntegrityError, OperationalError
    except ImportError:  # pragma: no cover - MLflow always brings SQLAlchemy
        return False
    cause = exc.__cause__ or exc.__context__
    return isinstance(exc, (IntegrityError, OperationalError)) or isinstance(
        cause, (IntegrityError, OperationalError)
    )


def _retry_on_conflict(write: Any) -> None:
    """Run ``write`` again when it lost a race: evidence writes are idempotent, and a second
    promotion of the same version at the same moment must not be refused for it."""
    for attempt in range(_WRITE_ATTEMPTS):
        try:
            write()
            return
        except Exception as exc:
            if attempt + 1 == _WRITE_ATTEMPTS or not _write_conflict(exc):
                raise


def _sql_set_model_version_tags(store: Any, name: str, version: str, tags: Mapping[str, str]) -> None:
    """All tags in one transaction, with the checks and rows of ``set_model_version_tag``."""
    from mlflow.utils.validation import _validate_model_version_tag

    for key, value in tags.items():
        _validate_model_version_tag(key, value)
    _retry_on_conflict(lambda: _sql_write_tags_once(store, name, version, tags))


def _sql_write_tags_once(store: Any, name: str, version: str, tags: Mapping[str, str]) -> None:
    from mlflow.store.model_registry.dbmodels.models import SqlModelVersionTag

    with store.ManagedSessionMaker(read_only=False) as session:
        # Checks the version exists and is not deleted, and loads its tags (eager=True) so that
        # only the rows whose value changes are written: UPDATE or INSERT, no per-tag SELECT.
        sql_mv = store._get_sql_model_version(session, name, version, eager=True)
        existing = {row.key: row for row in sql_mv.model_version_tags}
        for key, value in tags.items():
            row = existing.get(key)
            if row is None:
                session.add(
                    SqlModelVersionTag(
                        workspace=sql_mv.workspace,
                        name=sql_mv.name,
                        version=sql_mv.version,
                        key=key,
                        value=value,
                    )
                )
            elif row.value != value:
                row.value = value


class StoreBackend:
    """Reads through the tracking server's own stores (no HTTP to itself).

    The gate runs on every promotion request, so with MLflow's SQLAlchemy stores it reads only
    what a footprint needs, each in one short session: a run without its inputs and outputs, a
    model version without its ``aliases`` (left empty), a registered model's tags only, the
    cumulative-metric maxima in one query; and it writes the evidence tags in one transaction.
    Any other store goes through its public methods.
    """

    def __init__(self, tracking_store: Any, registry_store: Any) -> None:
        self.tracking_store = tracking_store
        self.registry_store = registry_store
        # run id -> (keys queried, maxima): read with the run by get_run, used once by the
        # metric_maxima call that follows it for the same run (run_footprint), then dropped.
        self._prefetched: dict[str, tuple[frozenset[str], dict[str, float]]] = {}
        # Inside reading(): database URI -> the one read session every read shares.
        self._sessions: dict[str, Any] | None = None
        # Inside reading(): runs read with their model version (run id -> view), taken once by get_run.
        self._runs: dict[str, Any] = {}
        self._stack: ExitStack | None = None

    @contextmanager
    def reading(self) -> Iterator[StoreBackend]:
        """Share one read session per database among all reads made inside (one evaluation).

        Each MLflow session costs a pool check-out, a liveness ping and (SQLite) three PRAGMAs
        before its first query; a gate evaluation reads the model, the version and the run, so
        sharing the session removes most of what the gate adds to a promotion. The tracking and
        registry stores share one session when they use the same database. Writes still open
        their own transaction (:meth:`set_model_version_tags`).
        """
        if self._sessions is not None:
            yield self
            return
        self._sessions, self._stack = {}, ExitStack()
        try:
            with self._stack:
                yield self
        finally:
            self._sessions, self._stack = None, None
            self._runs.clear()

    def _one_database(self) -> bool:
        """The tracking store is MLflow's plain SQL store on the registry store's database."""
        uri = getattr(self.registry_store, "db_uri", None)
        return (
            uri is not None
            and uri == getattr(self.tracking_store, "db_uri", None)
            and fast_tracking(self.tracking_store)
        )

    @contextmanager
    def _session(self, sql: Any) -> Iterator[Any]:
        if self._sessions is None or self._stack is None:
            with sql.ManagedSessionMaker() as session:
                yield session
            return
        key = str(getattr(sql, "db_uri", "") or id(sql))
        session = self._sessions.get(key)
        if session is None:
            session = self._stack.enter_context(sql.ManagedSessionMaker())
            self._sessions[key] = session
        yield session

    def get_run(self, run_id: str) -> Any:
        if fast_tracking(self.tracking_store):
            view = self._runs.pop(run_id, None)
            if view is None:
                with self._session(self.tracking_store) as session:
                    view = read_run(session, run_id, _RUN_LATEST, _CUMULATIVE)
            if view.maxima:
                self._prefetched[run_id] = (frozenset(view.maxima), dict(view.maxima))
            return view
        sql = _sql_tracking_store(self.tracking_store)
        if sql is None:
            return self.tracking_store.get_run(run_id)
        with self._session(sql) as session:
            # Run info, latest metrics, params and tags (what get_run loads before its three
            # dataset/logged-model input and output queries, which a footprint never reads).
            run = sql._get_run(session=session, run_uuid=run_id, eager=True).to_mlflow_entity()
            keys = [k for k in _CUMULATIVE if k in run.data.metrics]
            if keys:  # the footprint asks for these next: same session, no second connection
                self._prefetched[run_id] = (
                    frozenset(keys),
                    _sql_metric_maxima(sql, session, run_id, keys),
                )
        return run

    def metric_history(self, run_id: str, key: str) -> list[float]:
        return [m.value for m in self.tracking_store.get_metric_history(run_id, key)]

    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        keys = list(keys)
        prefetched = self._prefetched.pop(run_id, None)
        if not keys:
            return {}
        if prefetched is not None and prefetched[0].issuperset(keys):
            return {k: v for k, v in prefetched[1].items() if k in keys}
        sql = _sql_tracking_store(self.tracking_store)
        if sql is not None:
            with self._session(sql) as session:
                return _sql_metric_maxima(sql, session, run_id, keys)
        return _maxima_from_histories(self, run_id, keys)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]:
        return _all_child_runs(self.tracking_store.search_runs, experiment_id, parent_run_id)

    def get_logged_model(self, model_id: str) -> Any:
        return self.tracking_store.get_logged_model(model_id)

    def get_model_version(self, name: str, version: str) -> Any:
        sql = _sql_registry_store(self.registry_store)
        if sql is None:
            return self.registry_store.get_model_version(name, version)
        with self._session(sql) as session:
            # The version and its tags; MLflow's get_model_version also reads the registered
            # model and its aliases to fill ``aliases``, which a footprint never reads.
            return sql._get_sql_model_version(session, name, version, eager=True).to_mlflow_entity()

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self.registry_store.get_model_version_by_alias(name, alias)

    def model_and_version(self, name: str, version: str) -> tuple[dict[str, str], Any | None]:
        """The registered model's tags and the version, None when the version does not exist.

        MLflow's RESOURCE_DOES_NOT_EXIST when the registered model does not exist. With MLflow's
        SQLAlchemy registry this is one statement (the gate's first read of every promotion).
        """
        if fast_registry(self.registry_store):
            with self._session(self.registry_store) as session:
                if self._sessions is not None and self._one_database():
                    # Inside reading() (the gate): the version's source run in the same statement,
                    # one read of the database per promotion (on SQLite, one shared-lock window).
                    tags, view, run = read_model_version_and_run(
                        self.registry_store, session, name, str(version), _RUN_LATEST, _CUMULATIVE
                    )
                    if run is not None:
                        self._runs[run.info.run_id] = run
                    return tags, view
                return read_model_and_version(self.registry_store, session, name, str(version))
        tags = self.registered_model_tags(name)
        try:
            return tags, self.get_model_version(name, str(version))
        except Exception as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return tags, None
            raise

    def get_registered_model(self, name: str) -> Any:
        return self.registry_store.get_registered_model(name)

    def registered_model_tags(self, name: str) -> dict[str, str]:
        sql = _sql_registry_store(self.registry_store)
        if sql is None:
            return dict(self.registry_store.get_registered_model(name).tags or {})
        with self._session(sql) as session:
            # The model row (RESOURCE_DOES_NOT_EXIST when absent) and its tags: two small
            # queries instead of get_registered_model's five (aliases, latest versions, ...).
            model = sql._get_registered_model(session, name)
            return {tag.key: tag.value for tag in model.registered_model_tags}

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        if not tags:
            return
        sql = _sql_registry_store(self.registry_store)
        if sql is not None:
            _sql_set_model_version_tags(sql, name, version, tags)
            return
        from mlflow.entities.model_registry import ModelVersionTag

        for key, value in tags.items():
            tag = ModelVersionTag(key, value)
            _retry_on_conflict(lambda tag=tag: self.registry_store.set_model_version_tag(name, version, tag))


class ClientBackend:
    """Reads through an ``MlflowClient`` (a script, CI, or a test)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def get_run(self, run_id: str) -> Any:
        return self.client.get_run(run_id)

    def metric_history(self, run_id: str, key: str) -> list[float]:
        return [m.value for m in self.client.get_metric_history(run_id, key)]

    def metric_maxima(self, run_id: str, keys: Iterable[str]) -> dict[str, float]:
        return _maxima_from_histories(self, run_id, keys)

    def child_runs(self, experiment_id: str, parent_run_id: str) -> list[Any]:
        c = self.client

        def search(ids: Any, flt: str, view: Any, n: int, order: Any, token: Any) -> Any:
            return c.search_runs(ids, flt, view, n, order, token)

        return _all_child_runs(search, experiment_id, parent_run_id)

    def get_logged_model(self, model_id: str) -> Any:
        return self.client.get_logged_model(model_id)

    def get_model_version(self, name: str, version: str) -> Any:
        return self.client.get_model_version(name, version)

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        return self.client.get_model_version_by_alias(name, alias)

    def get_registered_model(self, name: str) -> Any:
        return self.client.get_registered_model(name)

    def registered_model_tags(self, name: str) -> dict[str, str]:
        return dict(self.client.get_registered_model(name).tags or {})

    def set_model_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, version, key, value)


@dataclass(frozen=True)
class RunFootprint:
    """The final cumulative ``green/`` figures of one run (None where the run logged none)."""

    run_id: str
    role: str  # "source", "parent", "child", "sibling" or "lineage"
    total_co2eq_kg: float | None
    co2eq_kg: float | None
    energy_kwh: float | None
    embodied_kg: float | None
    accuracy_per_kg: float | None
    status: str | None
    methods: Mapping[str, str] = field(default_factory=dict)
    co2eq_market_kg: float | None = None  # issue 19; None for runs logged before it

    @property
    def measured(self) -> bool:
        return self.total_co2eq_kg is not None or self.energy_kwh is not None

    @property
    def simulated(self) -> bool:
        return any(m == "simulated" for m in self.methods.values())

    @property
    def degraded(self) -> bool:
        return bool(self.status) and str(self.status).startswith("degraded")


@dataclass(frozen=True)
class Footprint:
    """A model version's footprint, summed over its runs without double counting."""

    runs: tuple[RunFootprint, ...]
    source_run_id: str | None
    copied_from: tuple[str, ...] = ()  # "name/version" chain of copy_model_version sources
    missing: tuple[str, ...] = ()  # sentences: evidence that should be there and is not
    notes: tuple[str, ...] = ()  # sentences worth reporting that decide nothing

    def _sum(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return math.fsum(values) if values else None

    @property
    def total_co2eq_kg(self) -> float | None:
        return self._sum("total_co2eq_kg")

    @property
    def co2eq_kg(self) -> float | None:
        return self._sum("co2eq_kg")

    @property
    def energy_kwh(self) -> float | None:
        return self._sum("energy_kwh")

    @property
    def embodied_kg(self) -> float | None:
        return self._sum("embodied_kg")

    @property
    def co2eq_market_kg(self) -> float | None:
        """Market-based operational kg; None unless every measured run logged it (fails closed)."""
        measured = [r for r in self.runs if r.measured]
        if not measured or any(r.co2eq_market_kg is None for r in measured):
            return None
        return self._sum("co2eq_market_kg")

    @property
    def accuracy_per_kg(self) -> float | None:
        """The source run's accuracy divided by the whole footprint (lineage included)."""
        source = next((r for r in self.runs if r.role == "source"), None)
        if source is None or source.accuracy_per_kg is None:
            return None
        total = self.total_co2eq_kg
        if source.total_co2eq_kg is None or not total:
            return source.accuracy_per_kg
        accuracy = source.accuracy_per_kg * source.total_co2eq_kg
        return accuracy / total

    @property
    def measured(self) -> bool:
        return any(r.measured for r in self.runs)

    @property
    def simulated_runs(self) -> tuple[str, ...]:
        return tuple(r.run_id for r in self.runs if r.simulated)

    @property
    def degraded_runs(self) -> tuple[RunFootprint, ...]:
        return tuple(r for r in self.runs if r.degraded)

    def figure(self, budget_key: str) -> float | None:
        """The figure a budget key is compared with."""
        return {
            schema.BUDGET_TOTAL_CO2EQ_KG: self.total_co2eq_kg,
            schema.BUDGET_CO2EQ_KG: self.co2eq_kg,
            schema.BUDGET_ENERGY_KWH: self.energy_kwh,
            schema.BUDGET_MIN_ACCURACY_PER_KG: self.accuracy_per_kg,
            schema.BUDGET_CO2EQ_MARKET_KG: self.co2eq_market_kg,
        }[budget_key]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_run_id": self.source_run_id,
            "copied_from": list(self.copied_from),
            "total_co2eq_kg": self.total_co2eq_kg,
            "co2eq_kg": self.co2eq_kg,
            "energy_kwh": self.energy_kwh,
            "embodied_kg": self.embodied_kg,
            "accuracy_per_kg": self.accuracy_per_kg,
            "runs": [
                {
                    "run_id": r.run_id,
                    "role": r.role,
                    "total_co2eq_kg": r.total_co2eq_kg,
                    "co2eq_kg": r.co2eq_kg,
                    "energy_kwh": r.energy_kwh,
                    "embodied_kg": r.embodied_kg,
                    "accuracy_per_kg": r.accuracy_per_kg,
                    "status": r.status,
                    "methods": dict(r.methods),
                }
                for r in self.runs
            ],
            "missing": list(self.missing),
            "notes": list(self.notes),
        }


def _metric(metrics: Mapping[str, float], key: str) -> float | None:
    value = metrics.get(key)
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# Cumulative metrics never decrease, so their maximum over the history is the run's total. Reading
# the maximum (not the latest value) means logging a small value at a later step cannot shrink a
# run's footprint after the fact.
_CUMULATIVE = (
    schema.CUM_TOTAL_CO2EQ_KG,
    schema.CUM_CO2EQ_KG,
    schema.CUM_ENERGY_KWH,
    schema.CUM_EMBODIED_KG,
    schema.CUM_CO2EQ_MARKET_KG,
)
# The latest values a footprint reads from a run (the SQL reads fetch only these).
_RUN_LATEST = (*_CUMULATIVE, schema.ACCURACY_PER_KG)


def run_footprint(run: Any, role: str, backend: Backend | None = None) -> RunFootprint:
    metrics = dict(run.data.metrics)
    if backend is not None:
        present = [key for key in _CUMULATIVE if key in metrics]
        if present:
            metrics.update(backend.metric_maxima(run.info.run_id, present))
    tags = run.data.tags
    methods = {
        component: tags[tag]
        for component, tag in (
            ("gpu", schema.TAG_METHOD_GPU),
            ("cpu", schema.TAG_METHOD_CPU),
            ("ram", schema.TAG_METHOD_RAM),
        )
        if tag in tags
    }
    return RunFootprint(
        run_id=run.info.run_id,
        role=role,
        total_co2eq_kg=_metric(metrics, schema.CUM_TOTAL_CO2EQ_KG),
        co2eq_kg=_metric(metrics, schema.CUM_CO2EQ_KG),
        energy_kwh=_metric(metrics, schema.CUM_ENERGY_KWH),
        embodied_kg=_metric(metrics, schema.CUM_EMBODIED_KG),
        accuracy_per_kg=_metric(metrics, schema.ACCURACY_PER_KG),
        status=tags.get(schema.TAG_STATUS),
        methods=methods,
        co2eq_market_kg=_metric(metrics, schema.CUM_CO2EQ_MARKET_KG),
    )


def _not_found(exc: BaseException) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")


def _run_id_from_runs_uri(source: str) -> str | None:
    if source.startswith("runs:/"):
        run_id = source[len("runs:/") :].split("/", 1)[0]
        return run_id or None
    return None


def resolve_source_run(
    backend: Backend, source: str | None, run_id: str | None
) -> tuple[str | None, tuple[str, ...], tuple[str, ...]]:
    """``(run_id, copy chain, notes)`` for a version's ``source``/``run_id`` pair.

    ``models:/name/version`` (copy_model_version) follows the source version; ``models:/m-<id>``
    (an MLflow 3 logged model) uses the logged model's ``source_run_id``, whatever ``run_id`` a
    client sent alongside it. Otherwise the version's ``run_id`` is its source run, and a
    ``runs:/<id>/...`` source only names the run when ``run_id`` is empty: the MLflow server
    refuses a ``runs:/`` source whose run differs from ``run_id``, so the two only disagree in
    versions written straight into a store, where ``run_id`` is the recorded lineage.
    """
    chain: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for _ in range(_MAX_COPY_DEPTH):
        source = source or ""
        if source.startswith("models:/"):
            target = source[len("models:/") :].strip("/")
            if "/" in target or "@" in target:
                if "@" in target and "/" not in target:
                    name, alias = target.split("@", 1)
                    mv = backend.get_model_version_by_alias(name, alias)
                else:
                    name, version = target.rsplit("/", 1)
                    mv = backend.get_model_version(name, version)
                ref = f"{mv.name}/{mv.version}"
                if ref in seen:
                    notes.append(f"copy chain loops at models:/{ref}")
                    return None, tuple(chain), tuple(notes)
                seen.add(ref)
                chain.append(ref)
                source, run_id = mv.source, mv.run_id
                continue
            if target:
                logged = backend.get_logged_model(target)
                logged_run = getattr(logged, "source_run_id", None)
                if logged_run:
                    if run_id and run_id != logged_run:
                        notes.append(
                            f"run_id {run_id} differs from logged model {target}'s source run "
                            f"{logged_run}; the logged model's run is used"
                        )
                    return logged_run, tuple(chain), tuple(notes)
            return run_id or None, tuple(chain), tuple(notes)
        if run_id:
            from_uri = _run_id_from_runs_uri(source)
            if from_uri and from_uri != run_id:
                notes.append(f"source {source} names run {from_uri}; the version's run_id {run_id} is used")
            return run_id, tuple(chain), tuple(notes)
        return _run_id_from_runs_uri(source), tuple(chain), tuple(notes)
    notes.append(f"copy chain longer than {_MAX_COPY_DEPTH} versions")
    return None, tuple(chain), tuple(notes)


def _lineage_ids(tags: Mapping[str, str]) -> list[str]:
    raw = tags.get(schema.TAG_LINEAGE, "")
    return [part.strip() for part in raw.replace(";", ",").split(",") if part.strip()]


def footprint_of_run(
    backend: Backend,
    run_id: str | None,
    *,
    include_lineage: bool = False,
    extra_lineage: Iterable[str] = (),
    copied_from: tuple[str, ...] = (),
    notes: tuple[str, ...] = (),
) -> Footprint:
    """The footprint of ``run_id`` (and, with ``include_lineage``, of the runs around it)."""
    missing: list[str] = []
    note_list = list(notes)
    if not run_id:
        missing.append("the model version names no source run, so its footprint is unknown")
        return Footprint((), None, copied_from, tuple(missing), tuple(note_list))
    try:
        source = backend.get_run(run_id)
    except Exception as exc:
        if not _not_found(exc):
            raise
        missing.append(f"source run {run_id} does not exist, so the footprint is unknown")
        return Footprint((), run_id, copied_from, tuple(missing), tuple(note_list))

    runs: dict[str, RunFootprint] = {run_id: run_footprint(source, "source", backend)}
    if not runs[run_id].measured:
        missing.append(f"source run {run_id} has no green/ metrics (was mlflow_green.autolog() on?)")

    if include_lineage:
        experiment_id = source.info.experiment_id
        parent_id = source.data.tags.get(PARENT_RUN_TAG)
        if parent_id:
            try:
                parent = backend.get_run(parent_id)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                missing.append(f"parent run {parent_id} does not exist")
            else:
                fp = run_footprint(parent, "parent", backend)
                runs.setdefault(parent_id, fp)
                if not fp.measured:
                    # A sweep's parent is usually a container whose children did the work.
                    note_list.append(f"parent run {parent_id} has no green/ metrics of its own")
                for child in backend.child_runs(parent.info.experiment_id, parent_id):
                    cid = child.info.run_id
                    if cid in runs:
                        continue
                    runs[cid] = run_footprint(child, "sibling", backend)
                    if not runs[cid].measured:
                        missing.append(f"sibling run {cid} (same parent) has no green/ metrics")
        for child in backend.child_runs(experiment_id, run_id):
            cid = child.info.run_id
            if cid in runs:
                continue
            runs[cid] = run_footprint(child, "child", backend)
            if not runs[cid].measured:
                missing.append(f"child run {cid} has no green/ metrics")
        for lid in [*_lineage_ids(source.data.tags), *extra_lineage]:
            if lid in runs:
                continue
            try:
                lrun = backend.get_run(lid)
            except Exception as exc:
                if not _not_found(exc):
                    raise
                missing.append(f"{schema.TAG_LINEAGE} names run {lid}, which does not exist")
                continue
            runs[lid] = run_footprint(lrun, "lineage", backend)
            if not runs[lid].measured:
                missing.append(f"lineage run {lid} has no green/ metrics")
    return Footprint(
        tuple(runs.values()), run_id, copied_from, tuple(missing), tuple(note_list)
    )


def model_version_footprint(
    backend: Backend,
    name: str,
    version: str,
    *,
    include_lineage: bool = False,
    model_version: Any = None,
) -> Footprint:
    """The footprint of registered model ``name`` version ``version``."""
    mv = model_version if model_version is not None else backend.get_model_version(name, str(version))
    return footprint_of_source(
        backend,
        mv.source,
        mv.run_id,
        include_lineage=include_lineage,
        version_tags=mv.tags,
        model_id=getattr(mv, "model_id", None),
    )


def footprint_of_source(
    backend: Backend,
    source: str | None,
    run_id: str | None,
    *,
    include_lineage: bool = False,
    version_tags: Mapping[str, str] | None = None,
    model_id: str | None = None,
) -> Footprint:
    """The footprint of a version-to-be with this ``source``/``run_id`` (used to gate copies)."""
    src = (source or "").strip()
    if model_id and not src.lower().startswith(("models:/", "runs:/")):
        # A version registered from an artifact location plus its MLflow 3 logged model id.
        source = f"models:/{model_id}"
    resolved, chain, notes = resolve_source_run(backend, source, run_id)
    extra = _lineage_ids(version_tags or {}) if include_lineage else []
    return footprint_of_run(
        backend,
        resolved,
        include_lineage=include_lineage,
        extra_lineage=extra,
        copied_from=chain,
        notes=notes,
    )
