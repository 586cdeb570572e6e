"""The ``/green`` page of the gated server: leaderboards and registered models' carbon gate.

:func:`render_green_page` takes the server's own tracking and registry stores (MLflow
``AbstractStore`` objects; an ``MlflowClient`` works too, its search methods take the same
keywords) and returns a whole HTML document: no build step, no external asset, everything
escaped. The leaderboard rows come from :mod:`mlflow_green.reports.leaderboard`, the same
code as ``mlflow-green leaderboard``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from html import escape
from typing import Any
from urllib.parse import quote

from mlflow_green.reports.gate_sections import audit_section, events_section
from mlflow_green.reports.html import leaderboard_section, page
from mlflow_green.reports.leaderboard import (
    Leaderboard,
    LeaderboardRow,
    build_leaderboard,
    format_number,
    iter_runs,
)
from mlflow_green.tracking import schema

__all__ = ["ROWS_PER_EXPERIMENT", "render_green_page"]

#: Rows shown per experiment on the page (the frontier is computed over all runs).
ROWS_PER_EXPERIMENT = 50
_VERSIONS_PER_MODEL = 20
_PROMPT_TAG = "mlflow.prompt.is_prompt"


def _pages(search: Any, **kwargs: Any) -> Iterator[Any]:
    token: str | None = None
    while True:
        batch = search(page_token=token, **kwargs)
        yield from batch
        token = getattr(batch, "token", None)
        if not token:
            return


def _tags(entity: Any) -> dict[str, str]:
    tags = getattr(entity, "tags", None) or {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {t.key: t.value for t in tags}  # list of tag entities


def _model_aliases(model: Any) -> dict[str, list[str]]:
    """version -> aliases, from the registered model (stores do not always fill versions')."""
    raw = getattr(model, "aliases", None) or {}
    pairs = (
        raw.items()
        if isinstance(raw, dict)
        else ((getattr(a, "alias", None), getattr(a, "version", None)) for a in raw)
    )
    out: dict[str, list[str]] = {}
    for alias, version in pairs:
        if alias is not None and version is not None:
            out.setdefault(str(version), []).append(str(alias))
    return out


def _aliases(version: Any, by_version: dict[str, list[str]]) -> list[str]:
    own = [str(a) for a in (getattr(version, "aliases", None) or [])]
    return sorted(set(own) | set(by_version.get(str(version.version), [])))


def _filter_quote(name: str) -> str:
    # MLflow filter strings accept either quote; pick the one the name does not contain.
    return f'"{name}"' if "'" in name else f"'{name}'"


def _experiments(tracking_store: Any) -> list[Any]:
    from mlflow.entities import ViewType

    found = list(
        _pages(tracking_store.search_experiments, view_type=ViewType.ACTIVE_ONLY, max_results=1000)
    )
    return sorted(found, key=lambda e: (e.name.lower(), e.experiment_id))


def _boards(tracking_store: Any) -> tuple[list[Leaderboard], list[Any]]:
    boards: list[Leaderboard] = []
    empty: list[Any] = []
    for exp in _experiments(tracking_store):
        board = build_leaderboard(
            iter_runs(tracking_store, [exp.experiment_id]),
            experiment_id=exp.experiment_id,
            experiment_name=exp.name,
            top=ROWS_PER_EXPERIMENT,
        )
        if board.total_ranked:
            boards.append(board)
        else:
            empty.append(exp)
    return boards, empty


def _verdict_badge(verdict: str | None) -> str:
    if verdict == "pass":
        return '<span class="badge pass">pass</span>'
    if verdict == "fail":
        return '<span class="badge fail">fail</span>'
    return '<span class="badge none">not checked</span>'


def _model_section(model: Any, registry_store: Any, prefix: str) -> str:
    name = str(model.name)
    tags = _tags(model)
    budgets = {
        k[len(schema.BUDGET_PREFIX) :]: v
        for k, v in tags.items()
        if k.startswith(schema.BUDGET_PREFIX)
    }
    versions = list(
        _pages(
            registry_store.search_model_versions,
            filter_string=f"name={_filter_quote(name)}",
            max_results=1000,
            order_by=None,
        )
    )
    by_version = _model_aliases(model)
    versions.sort(key=lambda v: int(v.version) if str(v.version).isdigit() else 0, reverse=True)
    checked = [(_tags(v).get(schema.GATE_CHECKED_AT, ""), v) for v in versions]
    checked = [(at, v) for at, v in checked if at]
    latest = max(checked, key=lambda t: t[0])[1] if checked else None
    model_href = f"{prefix}/#/models/{quote(name, safe='')}"
    parts = [
        f'<section class="model" data-model="{escape(name, quote=True)}">',
        f'<h3><a href="{escape(model_href, quote=True)}">{escape(name)}</a></h3>',
    ]
    if latest is not None:
        lt = _tags(latest)
        parts.append(
            f'<p class="sub">latest verdict: {_verdict_badge(lt.get(schema.GATE_VERDICT))} on version '
            f"{escape(str(latest.version))} at {escape(lt.get(schema.GATE_CHECKED_AT, ''))}</p>"
        )
    if budgets:
        parts.append(
            '<table><thead><tr><th class="name">budget</th><th>limit</th></tr></thead><tbody>'
        )
        for key in sorted(budgets):
            parts.append(
                f'<tr><td class="name"><code>{escape(schema.BUDGET_PREFIX + key)}</code></td>'
                f"<td>{escape(budgets[key])}</td></tr>"
            )
        parts.append("</tbody></table>")
    else:
        parts.append('<p class="muted">No green.budget.* tags on this model.</p>')
    if versions:
        parts.append(
            '<table><thead><tr><th>version</th><th class="name">stage / aliases</th>'
            "<th>verdict</th><th>total kg</th><th>energy kWh</th><th>checked at</th>"
            '<th class="name">attestation</th><th class="name">reasons</th></tr></thead><tbody>'
        )
        for v in versions[:_VERSIONS_PER_MODEL]:
            vt = _tags(v)
            where = ", ".join(
                [str(v.current_stage)] * (v.current_stage not in (None, "None"))
                + _aliases(v, by_version)
            )
            href = f"{model_href}/versions/{quote(str(v.version), safe='')}"
            parts.append(
                f'<tr><td><a href="{escape(href, quote=True)}">{escape(str(v.version))}</a></td>'
                f'<td class="name">{escape(where) or "-"}</td>'
                f"<td>{_verdict_badge(vt.get(schema.GATE_VERDICT))}</td>"
                f"<td>{escape(_num(vt.get(schema.GATE_TOTAL_CO2EQ_KG)))}</td>"
                f"<td>{escape(_num(vt.get(schema.GATE_ENERGY_KWH)))}</td>"
                f"<td>{escape(vt.get(schema.GATE_CHECKED_AT, '-'))}</td>"
                f'<td class="name">{escape(vt.get(schema.GATE_ATTESTATION, "-"))}</td>'
                f'<td class="name">{escape(vt.get(schema.GATE_REASONS, ""))}</td></tr>'
            )
        parts.append("</tbody></table>")
        if len(versions) > _VERSIONS_PER_MODEL:
            parts.append(
                f'<p class="muted">{_VERSIONS_PER_MODEL} newest of {len(versions)} versions shown.</p>'
            )
    else:
        parts.append('<p class="muted">No versions.</p>')
    parts.append("</section>")
    return "".join(parts)


def _num(raw: str | None) -> str:
    if raw is None or raw == "":
        return "-"
    try:
        return format_number(float(raw))
    except ValueError:
        return raw


def render_green_page(
    tracking_store: Any,
    registry_store: Any,
    *,
    prefix: str = "",
    audit: Mapping[str, Any] | None = None,
    events: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The whole ``/green`` HTML document.

    ``prefix`` is the URL prefix the MLflow UI is served under (``--static-prefix``), used for
    links to runs and model versions; ``registry_store`` may be None to leave models out.
    ``audit`` (the JSON of ``mlflow-green audit``) and ``events`` (that of ``audit --events``)
    add the aliases and stages over today's budgets and the gate's refusals and overrides.
    """
    from mlflow_green._version import __version__

    prefix = prefix.rstrip("/")
    boards, empty = _boards(tracking_store)

    def run_link(row: LeaderboardRow, exp_id: str) -> str:
        return f"{prefix}/#/experiments/{quote(exp_id, safe='')}/runs/{quote(row.run_id, safe='')}"

    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = [
        "<h1>mlflow_green</h1>",
        f'<p class="sub">Carbon leaderboards and the registry\'s carbon gate · generated {now} · '
        f"mlflow_green {escape(__version__)} · "
        f'<a href="{escape(prefix or "/", quote=True)}">MLflow UI</a></p>',
        "<h2>Experiments</h2>",
    ]
    if not boards:
        body.append('<p class="muted">No experiment has runs with green/ metrics yet.</p>')
    for board in boards:
        body.append(
            leaderboard_section(
                board,
                run_link=functools.partial(run_link, exp_id=board.experiment_id),
                heading_level=3,
            )
        )
    if empty:
        names = ", ".join(escape(e.name) for e in empty[:30])
        body.append(f'<p class="muted">Experiments without measured runs: {names}</p>')
    if audit is not None:
        body.append(audit_section(audit))
    if events is not None:
        body.append(events_section(events))
    from mlflow_green.reports.ledger_html import ledger_view  # issue 19: the ledger view

    body.append(ledger_view(tracking_store))
    if registry_store is not None:
        body.append("<h2>Registered models</h2>")
        models = [
            m
            for m in _pages(registry_store.search_registered_models, max_results=1000)
            if _tags(m).get(_PROMPT_TAG, "").lower() != "true"
        ]
        models.sort(key=lambda m: str(m.name).lower())
        if not models:
            body.append('<p class="muted">No registered models.</p>')
        body.extend(_model_section(m, registry_store, prefix) for m in models)
    return page("mlflow_green — carbon", "".join(body))
