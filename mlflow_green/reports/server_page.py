"""The ``/green`` page mounted on a gated tracking server (``--app-name green-gate[-auth]``).

The server's app modules (``mlflow_green.registry.app`` and ``app_auth``) mount it; the gate
itself (``mlflow_green.registry``) does not import the reports layer.
"""

from __future__ import annotations

import html
import logging
import os
from typing import Any

__all__ = ["mount_green_page"]

_logger = logging.getLogger("mlflow_green.gate")


def mount_green_page(flask_app: Any) -> None:
    """Add ``GET /green`` (under the server's ``--static-prefix``) to ``flask_app``, once."""
    from mlflow_green.registry import _mlflow_seams as seams

    route = seams.static_prefix("/green")
    if any(rule.rule == route for rule in flask_app.url_map.iter_rules()):
        return

    def green_page() -> Any:
        return _render()

    flask_app.add_url_rule(route, "mlflow_green_page", green_page, methods=["GET"])


def _render() -> Any:
    from flask import Response

    from mlflow_green.registry import _mlflow_seams as seams
    from mlflow_green.reports.green_page import render_green_page

    prefix = os.environ.get(seams.static_prefix_env(), "").rstrip("/")
    try:
        page = render_green_page(seams.tracking_store(), seams.registry_store(), prefix=prefix)
    except Exception as exc:  # a report must not take the server down, nor answer 5xx
        _logger.exception("the /green page failed")
        text = " ".join(str(exc).split())[:300]
        return Response(
            f"<!doctype html><p>The green page could not be rendered: {type(exc).__name__}: "
            f"{html.escape(text)}</p>",
            status=200,
            mimetype="text/html",
        )
    return Response(page, status=200, mimetype="text/html")
