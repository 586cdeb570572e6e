"""Client-side API of the carbon gate: evaluate, check and promote a model version."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow_green.errors import ConfigError, GateDenied
from mlflow_green.registry.footprint import Backend, ClientBackend, model_version_footprint
from mlflow_green.registry.policy import Policy, policy_from_env
from mlflow_green.registry.verdict import Verdict, judge

__all__ = ["PromotionDenied", "check", "evaluate", "evaluate_with", "promote"]

# The administrator override, shared by the client (promote) and the gated server.
ENV_ADMIN_TOKEN = "MLFLOW_GREEN_ADMIN_TOKEN"
OVERRIDE_HEADER = "X-MLflow-Green-Override"
OVERRIDE_REASON_HEADER = "X-MLflow-Green-Override-Reason"
OVERRIDE_TAG = "green.gate.override"


class PromotionDenied(GateDenied):
    """A promotion refused by the gate; ``verdict`` holds the details (None when the server refused)."""

    def __init__(self, message: str, verdict: Verdict | None = None) -> None:
        super().__init__(message)
        self.verdict = verdict


def _policy(policy: Policy | str | Path | None) -> Policy:
    if isinstance(policy, Policy):
        return policy
    return policy_from_env(policy)


def _client(client: Any, tracking_uri: str | None) -> Any:
    if client is not None:
        return client
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def evaluate_with(
    backend: Backend,
    policy: Policy,
    name: str,
    version: str,
    *,
    alias: str | None = None,
    stage: str | None = None,
    model_version: Any = None,
    model_tags: Mapping[str, str] | None = None,
) -> Verdict:
    """The verdict for ``name``/``version`` read through ``backend`` (client or server stores).

    A caller that has already read the registered model's tags or the model version passes
    them as ``model_tags`` / ``model_version``, so each entity is read once per request. The
    version's footprint is its frozen record (``green.gate.footprint``, written by a gated server)
    when it has a final one, else it is computed with every figure at its worst over the history.
    """
    if alias and stage:
        raise ConfigError("give either an alias or a stage, not both")
    tags = dict(model_tags) if model_tags is not None else backend.registered_model_tags(name)
    model_policy = policy.for_model(name)
    mv = model_version if model_version is not None else backend.get_model_version(name, str(version))
    fp = model_version_footprint(
        backend, name, str(version), include_lineage=model_policy.include_lineage, model_version=mv
    )
    attestation = None
    if model_policy.trusted_keys or model_policy.on_unattested == "deny":
        from mlflow_green.registry.attest import version_attestation

        attestation = version_attestation(backend, fp, model_policy.trusted_keys)
    return judge(
        model=name,
        version=str(version),
        footprint=fp,
        policy=model_policy,
        model_tags=tags,
        alias=alias,
        stage=stage,
        attestation=attestation,
    )


def evaluate(
    name: str,
    version: str | int,
    *,
    alias: str | None = None,
    stage: str | None = None,
    policy: Policy | str | Path | None = None,
    client: Any = None,
    tracking_uri: str | None = None,
) -> Verdict:
    """Decide whether model ``name`` version ``version`` is within its carbon budgets.

    Reads only; writes nothing. ``alias``/``stage`` select the scoped budgets
    (``green.budget.<alias>.<key>``); ``policy`` is a :class:`Policy`, a YAML path, or None for
    ``MLFLOW_GREEN_POLICY`` (or the built-in defaults).
    """
    return evaluate_with(
        ClientBackend(_client(client, tracking_uri)),
        _policy(policy),
        name,
        str(version),
        alias=alias,
        stage=stage,
    )


def _write_evidence(client: Any, verdict: Verdict) -> bool:
    """Write the evidence tags; False when a gated server refuses (it then writes its own)."""
    from mlflow.exceptions import MlflowException

    try:
        ClientBackend(client).set_model_version_tags(
            verdict.model, verdict.version, verdict.evidence_tags()
        )
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "PERMISSION_DENIED":
            return False
        raise
    return True


def check(
    name: str,
    version: str | int,
    *,
    alias: str | None = None,
    stage: str | None = None,
    policy: Policy | str | Path | None = None,
    client: Any = None,
    tracking_uri: str | None = None,
    write_evidence: bool = True,
) -> Verdict:
    """:func:`evaluate`, then write the ``green.gate.*`` evidence tags on the version.

    A gated server refuses client writes of ``green.gate.*`` (it records its own evidence on
    promotion); that refusal is not an error here. Returns the verdict, pass or fail.
    """
    c = _client(client, tracking_uri)
    verdict = evaluate(name, version, alias=alias, stage=stage, policy=policy, client=c)
    if write_evidence:
        _write_evidence(c, verdict)
    return verdict


def promote(
    name: str,
    version: str | int,
    alias: str,
    *,
    policy: Policy | str | Path | None = None,
    client: Any = None,
    tracking_uri: str | None = None,
    override_reason: str | None = None,
) -> Verdict:
    """Check, write evidence, and set ``alias`` on the version.

    Raises :class:`PromotionDenied` when the version breaks a budget (locally or as judged by a
    gated server, whose message is kept). Promotion to an alias that the policy does not gate
    is allowed whatever the figures.

    ``override_reason`` is the administrator override: the alias is set even over budget, with
    the token from ``MLFLOW_GREEN_ADMIN_TOKEN`` sent to the gated server, which records the
    reason in the version's ``green.gate.override`` tag.
    """
    if not alias or not alias.strip():
        raise ConfigError("promote needs an alias, e.g. --alias champion")
    c = _client(client, tracking_uri)
    verdict = check(name, version, alias=alias, policy=policy, client=c)
    if override_reason is not None:
        _set_alias_with_override(c, name, alias, str(version), override_reason)
        return verdict
    if verdict.gated and not verdict.passed:
        raise PromotionDenied(verdict.summary(), verdict)
    from mlflow.exceptions import MlflowException

    try:
        c.set_registered_model_alias(name, alias, str(version))
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "PERMISSION_DENIED":
            raise PromotionDenied(
                f"the server refused {name} version {version} for alias '{alias}': {exc.message}",
                verdict,
            ) from None
        raise
    return verdict


def _set_alias_with_override(client: Any, name: str, alias: str, version: str, reason: str) -> None:
    import os

    from mlflow_green.registry.remote import call_server, is_server_uri
    from mlflow_green.tracking import _mlflow_compat as compat

    token = os.environ.get(ENV_ADMIN_TOKEN, "").strip()
    if not token:
        raise ConfigError(f"an override needs the administrator token in {ENV_ADMIN_TOKEN}")
    uri = compat.registry_uri(client)
    if not is_server_uri(uri):
        raise ConfigError("an override goes through a gated tracking server; set an http(s) tracking URI")
    call_server(
        uri,
        "/api/2.0/mlflow/registered-models/alias",
        {"name": name, "alias": alias, "version": version},
        headers={OVERRIDE_HEADER: token, OVERRIDE_REASON_HEADER: " ".join(reason.split())},
    )
