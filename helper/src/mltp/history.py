"""How the gate metrics moved across the versions of the model package group,
for the charts of report.html.

Each registered version points at its evaluation.json (ModelMetrics ->
ModelQuality -> Statistics, set by the Register step), so the values come from
the registry itself, not from any file Jenkins kept. Reading them costs one
ListModelPackages page plus a DescribeModelPackage and an S3 GetObject per
version, so only the newest `LIMIT` versions are read. A run that registered
nothing (a branch build, a missed gate) is added as a point of its own.
Whatever cannot be read becomes a note: the report is never lost to it. A
version's evaluation.json is read only up to 1 MiB (gate.read_evaluation); one
that is larger, not UTF-8, nested too deeply or not a valid evaluation.json is
skipped, and the note names the version and why.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import botocore.exceptions

from . import gate, training_metrics
from .aws import Clients
from .config import GateRule
from .definition import metric_property
from .errors import MltpError
from .outcome import Outcome

LIMIT = 30
_AWS_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)


def _split_s3(uri: str):
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


SHOWN_SKIPPED = 3  # versions named in the note; more are counted


def _version_metrics(clients: Clients, description: Dict[str, Any],
                     rules: Sequence[GateRule] = ()) -> Optional[Dict[str, float]]:
    """The version's metrics, None without an evaluation.json; EvaluationError
    (an MltpError) when it cannot be read. Read as the gate reads them: a rule's
    `path` where it points (evaluation.json keeping `accuracy` at the top level,
    say), and a training metric (source: training) from the value the Register step
    recorded with the version (CustomerMetadataProperties, metric:<name>)."""
    uri = ((((description.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri"))
    if not uri or not str(uri).startswith("s3://"):
        return None
    bucket, key = _split_s3(uri)
    body = gate.read_evaluation(clients.s3.get_object(Bucket=bucket, Key=key)["Body"], "its evaluation.json")
    if not any(rule.path or rule.source == training_metrics.TRAINING for rule in rules):
        return gate.parse_evaluation(body, source="its evaluation.json")
    values = {name: float(value) for name, value in gate.metric_values(body, "its evaluation.json", rules).items()
              if gate.is_number(value)}
    recorded = description.get("CustomerMetadataProperties") or {}
    for name in training_metrics.gated(rules):
        value = training_metrics.number(recorded.get(metric_property(name)))
        if value is not None:
            values[name] = value
    return values


def _skipped_note(skipped: List[str]) -> str:
    shown = "; ".join(skipped[:SHOWN_SKIPPED])
    more = len(skipped) - SHOWN_SKIPPED
    return f"skipped {shown}" + (f"; and {more} more version(s)" if more > 0 else "")


def collect(group: str, clients: Clients, result: Outcome, limit: int = LIMIT,
            rules: Sequence[GateRule] = ()) -> Dict[str, Any]:
    """{"group", "versions": [{"version", "arn", "created", "run", "metrics", "this_run"}], "note"}, oldest first.
    `rules`: the gate's, so each version's values are read where the gate reads them."""
    versions: List[Dict[str, Any]] = []
    note = ""
    unreadable = 0
    skipped: List[str] = []
    try:
        summaries: List[Dict[str, Any]] = []
        token = None
        while len(summaries) < limit:
            request = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending",
                       "MaxResults": min(100, limit)}
            if token:
                request["NextToken"] = token
            page = clients.sagemaker.list_model_packages(**request)
            summaries.extend(page.get("ModelPackageSummaryList", []))
            token = page.get("NextToken")
            if not token:
                break
        for summary in summaries[:limit]:
            arn = summary["ModelPackageArn"]
            description = clients.sagemaker.describe_model_package(ModelPackageName=arn)
            number = description.get("ModelPackageVersion") or summary.get("ModelPackageVersion")
            try:
                metrics = _version_metrics(clients, description, rules)
            except _AWS_ERRORS:
                metrics = None
            except MltpError as exc:  # a version's file must never cost the report
                skipped.insert(0, f"v{number}: {exc.message.split('; expected e.g.')[0]}")  # oldest first
                continue
            if metrics is None:
                unreadable += 1
            created = description.get("CreationTime") or summary.get("CreationTime")
            versions.append({
                "version": number,
                "arn": arn,
                "created": created.isoformat() if hasattr(created, "isoformat") else created,
                "run": (description.get("CustomerMetadataProperties") or {}).get("RunName"),
                "metrics": metrics or {},
                "this_run": arn == result.model_package_arn,
            })
    except _AWS_ERRORS as exc:
        error = exc.response.get("Error", {}) if isinstance(exc, botocore.exceptions.ClientError) else {}
        if error.get("Code") not in ("ValidationException", "ResourceNotFound"):  # no group yet: no history
            note = f"could not read the versions of {group}: {error.get('Code') or type(exc).__name__}"
    versions.reverse()
    if more_than_shown(versions, limit):
        note = note or f"the newest {limit} versions are shown"
    if unreadable:
        note = (note + "; " if note else "") + f"{unreadable} version(s) have no readable evaluation.json"
    if skipped:
        note = (note + "; " if note else "") + _skipped_note(skipped)
    if not any(v["this_run"] for v in versions):
        values = {c.metric: c.value for c in result.gate if c.value is not None}
        if values:
            versions.append({"version": None, "label": "this run", "arn": None, "created": None,
                             "run": result.run_name, "metrics": values, "this_run": True})
    return {"group": group, "versions": versions, "note": note}


def more_than_shown(versions: List[Dict[str, Any]], limit: int) -> bool:
    return len(versions) >= limit
