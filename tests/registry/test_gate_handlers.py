"""The gate's coverage, read from MLflow's own handler table and request messages.

Every handler MLflow's server mounts is classified here: guarded by the gate (``GUARDED`` in
``mlflow_green.registry._gate``) or left alone for a stated reason. Every field of every guarded
request message is classified too: read by the gate, or ignored for a stated reason. A new MLflow
handler, or a new field (a new alias such as ``run_uuid`` beside ``run_id``), fails these tests
until someone decides what it can write and whether the gate must read it.
"""

from __future__ import annotations

from typing import Any

import pytest

from mlflow_green.registry import _gate_rules as rules
from mlflow_green.registry import _mlflow_seams as seams
from mlflow_green.registry._gate import GUARDED

_READS = "reads only"
_NOT_EVIDENCE = "writes nothing the footprint, the budgets, aliases or stages depend on"
_RUN_METRIC = "a metric write: figures are read at their worst over the history and frozen when the run ends"
_NEW_ENTITY = "creates a new run, experiment or logged model, which backs no version yet"
_GONE = "removes or restores an entity: the version's frozen record no longer reads it"
_DESCRIPTION = "changes a description only"
_DEMOTION = "removes a version or an alias: a demotion, never a promotion"

UNGUARDED: dict[str, str] = {
    **dict.fromkeys(
        [
            "BatchGetTraceInfos", "BatchGetTraces", "CalculateTraceFilterCorrelation", "DownloadArtifact",
            "GetAssessmentRequest", "GetDataset", "GetDatasetExperimentIds", "GetDatasetRecords", "GetExperiment",
            "GetExperimentByName", "GetGatewayBudgetPolicy", "GetGatewayEndpoint", "GetGatewayGuardrail",
            "GetGatewayModelDefinition", "GetGatewaySecretInfo", "GetIssue", "GetLabelSchema", "GetLabelSchemaByName",
            "GetLatestVersions", "GetLoggedModel", "GetMetricHistory", "GetMetricHistoryBulkInterval", "GetModelVersion",
            "GetModelVersionByAlias", "GetModelVersionDownloadUri", "GetOrCreateUserQueue", "GetPresignedDownloadUrl",
            "GetPromptOptimizationJob", "GetRegisteredModel", "GetReviewQueue", "GetReviewQueueByName", "GetRun",
            "GetScorer", "GetTrace", "GetTraceInfo", "GetTraceInfoV3", "GetWebhook", "GetWorkspace", "ListArtifacts",
            "ListEndpointGuardrailConfigs", "ListGatewayBudgetPolicies", "ListGatewayBudgetWindows",
            "ListGatewayEndpointBindings", "ListGatewayEndpoints", "ListGatewayGuardrails",
            "ListGatewayModelDefinitions", "ListGatewaySecretInfos", "ListLabelSchemas", "ListLoggedModelArtifacts",
            "ListReviewQueueItems", "ListReviewQueues", "ListScorerVersions", "ListScorers", "ListWebhooks",
            "ListWorkspaces", "QueryTraceMetrics", "SearchEvaluationDatasets", "SearchExperiments", "SearchIssues",
            "SearchLoggedModels", "SearchModelVersions", "SearchPromptOptimizationJobs", "SearchRegisteredModels",
            "SearchRuns", "SearchTraces", "SearchTracesV3",
        ],
        _READS,
    ),
    **dict.fromkeys(
        [
            "AbortMultipartUpload", "AddDatasetToExperiments", "AddGuardrailToEndpoint", "AddItemsToReviewQueue",
            "AttachModelToGatewayEndpoint", "CancelPromptOptimizationJob", "CompleteMultipartUpload",
            "CreateAssessment", "CreateDataset", "CreateGatewayBudgetPolicy", "CreateGatewayEndpoint",
            "CreateGatewayEndpointBinding", "CreateGatewayGuardrail", "CreateGatewayModelDefinition",
            "CreateGatewaySecret", "CreateIssue", "CreateLabelSchema", "CreateMultipartUpload",
            "CreatePresignedDownloadUrl", "CreatePresignedUploadUrl", "CreatePromptOptimizationJob",
            "CreateReviewQueue", "CreateWebhook", "CreateWorkspace", "DeleteArtifact", "DeleteAssessment",
            "DeleteDataset", "DeleteDatasetRecords", "DeleteDatasetTag", "DeleteGatewayBudgetPolicy",
            "DeleteGatewayEndpoint", "DeleteGatewayEndpointBinding", "DeleteGatewayEndpointTag",
            "DeleteGatewayGuardrail", "DeleteGatewayModelDefinition", "DeleteGatewaySecret", "DeleteLabelSchema",
            "DeletePromptOptimizationJob", "DeleteReviewQueue", "DeleteScorer", "DeleteTraceTag", "DeleteTraceTagV3",
            "DeleteTraces", "DeleteTracesV3", "DeleteWebhook", "DeleteWorkspace", "DetachModelFromGatewayEndpoint",
            "EndTrace", "LinkPromptsToTrace", "LinkTracesToRun", "RegisterScorer", "RemoveDatasetFromExperiments",
            "RemoveGuardrailFromEndpoint", "RemoveItemsFromReviewQueue", "SetDatasetTags", "SetGatewayEndpointTag",
            "SetReviewQueueItemStatus", "SetTraceTag", "SetTraceTagV3", "StartTrace", "StartTraceV3", "TestWebhook",
            "UpdateAssessment", "UpdateEndpointGuardrailConfig", "UpdateGatewayBudgetPolicy",
            "UpdateGatewayEndpoint", "UpdateGatewayModelDefinition", "UpdateGatewaySecret", "UpdateIssue",
            "UpdateLabelSchema", "UpdateReviewQueue", "UpdateWebhook", "UpdateWorkspace", "UploadArtifact",
            "UpsertDatasetRecords", "LogParam", "LogInputs", "LogOutputs", "LogModel", "SetExperimentTag",
            "DeleteExperimentTag", "UpdateExperiment", "SetLoggedModelTags", "DeleteLoggedModelTag",
            "LogLoggedModelParamsRequest", "FinalizeLoggedModel",
        ],
        _NOT_EVIDENCE,
    ),
    "LogMetric": _RUN_METRIC,
    "CreateRun": _NEW_ENTITY,
    "CreateExperiment": _NEW_ENTITY,
    "CreateLoggedModel": _NEW_ENTITY,
    "DeleteRun": _GONE,
    "RestoreRun": _GONE,
    "DeleteExperiment": _GONE,
    "RestoreExperiment": _GONE,
    "DeleteLoggedModel": _GONE,
    "UpdateModelVersion": _DESCRIPTION,
    "UpdateRegisteredModel": _DESCRIPTION,
    "DeleteModelVersion": _DEMOTION,
    "DeleteRegisteredModelAlias": _DEMOTION,
}

# Every field of every guarded request message: what the gate does with it.
_READ = "read by the gate"
_IGNORED = "ignored: changes nothing the gate judges"
FIELDS: dict[str, dict[str, str]] = {
    "SetTag": {"run_id": _READ, "run_uuid": _READ, "key": _READ, "value": _READ},
    "DeleteTag": {"run_id": _READ, "key": _READ},
    "LogBatch": {"run_id": _READ, "tags": _READ, "metrics": "worst over the history", "params": _IGNORED},
    "UpdateRun": {"run_id": _READ, "run_uuid": _READ, "status": _READ, "end_time": _IGNORED, "run_name": _IGNORED},
    "SetRegisteredModelAlias": {"name": _READ, "alias": _READ, "version": _READ},
    "TransitionModelVersionStage": {
        "name": _READ, "version": _READ, "stage": _READ,
        "archive_existing_versions": "ignored: archiving demotes other versions",
    },
    "CreateModelVersion": {
        "name": _READ, "source": _READ, "run_id": _READ, "tags": _READ, "model_id": _READ,
        "run_link": _IGNORED, "description": _IGNORED,
    },
    "CreateRegisteredModel": {"name": _READ, "tags": _READ, "description": _IGNORED, "deployment_job_id": _IGNORED},
    "SetModelVersionTag": {"name": _READ, "version": _READ, "key": _READ, "value": _READ},
    "DeleteModelVersionTag": {"name": _READ, "version": _READ, "key": _READ},
    "SetRegisteredModelTag": {"name": _READ, "key": _READ, "value": _READ},
    "DeleteRegisteredModelTag": {"name": _READ, "key": _READ},
    "RenameRegisteredModel": {"name": _READ, "new_name": _READ},
    "DeleteRegisteredModel": {"name": _READ},
}


def _classes() -> dict[str, type]:
    return {cls.__name__: cls for cls in seams.handler_table()}


def test_every_mlflow_handler_is_classified() -> None:
    mounted = set(_classes())
    unclassified = sorted(mounted - set(GUARDED) - set(UNGUARDED))
    assert not unclassified, (
        f"MLflow handlers nobody classified: {unclassified}. Decide whether each can write evidence, "
        "budgets, aliases or stages; guard it in _gate.GUARDED or list it in UNGUARDED with the reason."
    )
    assert not set(GUARDED) & set(UNGUARDED)
    gone = sorted((set(GUARDED) | set(UNGUARDED)) - mounted)
    assert set(GUARDED) <= mounted, f"guarded handlers MLflow no longer has: {gone}"


@pytest.mark.parametrize("name", sorted(GUARDED))
def test_every_field_of_a_guarded_request_is_classified(name: str) -> None:
    descriptor = _classes()[name].DESCRIPTOR
    fields = {f.name for f in descriptor.fields}
    assert fields == set(FIELDS[name]), (
        f"{name}: fields {sorted(fields ^ set(FIELDS[name]))} are new or gone; decide whether the gate "
        "reads each (an alias of a field it reads must be read too)"
    )
    # Every JSON spelling of a field is parsed into the same field by MLflow's parser.
    for f in descriptor.fields:
        assert f.json_name, f.name


def _parse(cls: type, body: dict[str, Any]) -> Any:
    from flask import Flask

    app = Flask("parse")
    with app.test_request_context("/", method="POST", json=body):
        return seams.parse_request(cls)


_RUN_SPELLINGS = [
    (name, spelling)
    for name in sorted(GUARDED)
    for field, spellings in (("run_id", ("run_id", "runId")), ("run_uuid", ("run_uuid", "runUuid")))
    if field in FIELDS[name]
    for spelling in spellings
]


@pytest.mark.parametrize(("name", "spelling"), _RUN_SPELLINGS)
def test_every_run_id_spelling_names_the_run(name: str, spelling: str) -> None:
    cls = _classes()[name]
    fields = {f.name for f in cls.DESCRIPTOR.fields}
    msg = _parse(cls, {spelling: "abc123", "key": "k"} if "key" in fields else {spelling: "abc123"})
    assert rules.run_id_of(msg) == "abc123"


@pytest.mark.parametrize("version", ["3", 3])
def test_versions_given_as_text_or_number(version: Any) -> None:
    """MLflow's handler answers a number with its own 400 (type check); the gate's parse of a
    number leaves the version empty, which it leaves to that handler as a missing target."""
    msg = _parse(_classes()["SetRegisteredModelAlias"], {"name": "m", "alias": "a", "version": version})
    assert msg.version == ("3" if isinstance(version, str) else "")
