"""The model package group after the gate: list versions, find the champion,
approve or reject a version, record and check the model's SHA-256.

Everything here reads what the registry itself holds: the gate's values are the
`metric:<name>` CustomerMetadataProperties the Register step wrote (older
versions without them fall back to the evaluation.json their ModelMetrics point
to), who decided is in the ApprovalDescription that `approve`/`reject` wrote.

"Newest" is the highest ModelPackageVersion: versions are numbered in creation
order by SageMaker, and unlike CreationTime they never tie (a restored local
registry creates its versions within a millisecond).

moto's UpdateModelPackage replaces CustomerMetadataProperties and
ApprovalDescription wholesale where AWS merges them, so every update here
sends the complete wanted values: the same request does the same on both.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, List, Mapping, Optional

import botocore.exceptions

from .aws import Clients, error_code, refused
from .errors import AwsRefused, InvalidInput

APPROVED = "Approved"
REJECTED = "Rejected"
PENDING = "PendingManualApproval"
METRIC_PREFIX = "metric:"
SHA256_KEY = "ModelSha256"
_MISSING_GROUP = ("ValidationException", "ResourceNotFound")

# "Approved by alice at 2026-11-26T14:03:00Z (build https://...): looks good"
_DECISION = re.compile(
    r"^(?P<status>Approved|Rejected) by (?P<by>.+?) at (?P<at>\S+)(?: \(build (?P<build>\S+)\))?(?:: (?P<note>.*))?$", re.S
)


@dataclass
class Version:
    """One model package (version) of the group, as `mltp models` shows it."""

    arn: str
    group: str
    version: int
    status: str
    created: Optional[datetime] = None
    metrics: Dict[str, float] = field(default_factory=dict)
    commit: str = ""
    build_url: str = ""
    run_name: str = ""
    sha256: str = ""
    model_data_url: str = ""
    decided_by: str = ""
    decided_at: str = ""
    decision_build: str = ""
    note: str = ""
    approval_description: str = ""
    properties: Dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.group}/{self.version}"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "arn": self.arn,
            "group": self.group,
            "version": self.version,
            "status": self.status,
            "created": self.created.isoformat() if self.created else None,
            "metrics": dict(self.metrics),
            "commit": self.commit,
            "build_url": self.build_url,
            "run": self.run_name,
            "model_data_url": self.model_data_url,
            "sha256": self.sha256 or None,
            "decided_by": self.decided_by or None,
            "decided_at": self.decided_at or None,
            "decision_build": self.decision_build or None,
            "note": self.note or None,
        }


def _unknown(value: str) -> str:
    return "" if value == "unknown" else value


def version_from_description(description: Mapping[str, Any], s3=None) -> Version:
    """A Version from DescribeModelPackage; `s3` (a client) reads evaluation.json
    for versions registered before the metrics were recorded as properties."""
    props = dict(description.get("CustomerMetadataProperties") or {})
    metrics: Dict[str, float] = {}
    for key, value in props.items():
        if key.startswith(METRIC_PREFIX):
            try:
                metrics[key[len(METRIC_PREFIX):]] = float(value)
            except (TypeError, ValueError):
                continue
    if not metrics and s3 is not None:
        metrics = _metrics_from_statistics(description, s3)
    containers = (description.get("InferenceSpecification") or {}).get("Containers") or [{}]
    arn = description["ModelPackageArn"]
    version = Version(
        arn=arn,
        group=description.get("ModelPackageGroupName") or arn.split(":model-package/", 1)[-1].rsplit("/", 1)[0],
        version=int(description.get("ModelPackageVersion") or arn.rsplit("/", 1)[-1]),
        status=description.get("ModelApprovalStatus") or "",
        created=description.get("CreationTime"),
        metrics=metrics,
        commit=_unknown(props.get("GitCommit", "")),
        build_url=_unknown(props.get("BuildUrl", "")),
        run_name=props.get("RunName", ""),
        sha256=props.get(SHA256_KEY, ""),
        model_data_url=containers[0].get("ModelDataUrl", ""),
        approval_description=description.get("ApprovalDescription") or "",
        properties=props,
    )
    match = _DECISION.match(version.approval_description)
    if match:
        version.decided_by = match.group("by")
        version.decided_at = match.group("at")
        version.decision_build = match.group("build") or ""
        version.note = (match.group("note") or "").strip()
    elif version.approval_description:
        version.note = version.approval_description
    return version


def split_s3(uri: str):
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def _metrics_from_statistics(description: Mapping[str, Any], s3) -> Dict[str, float]:
    from . import gate
    uri = (((description.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
    if not uri or not uri.startswith("s3://"):
        return {}
    bucket, key = split_s3(uri)
    try:
        body = gate.read_evaluation(s3.get_object(Bucket=bucket, Key=key)["Body"], uri)
        return gate.parse_evaluation(body, source=uri)
    except Exception:  # an old version whose evaluation.json is gone: no metrics to show
        return {}


# --------------------------------------------------------------------------- listing


def _summaries(clients: Clients, group: str, status: Optional[str] = None) -> List[Dict[str, Any]]:
    """Every version summary of the group, newest first; [] when the group does not exist."""
    sm = clients.sagemaker
    out: List[Dict[str, Any]] = []
    token = None
    with refused("ListModelPackages", group):
        while True:
            request: Dict[str, Any] = {"ModelPackageGroupName": group, "SortBy": "CreationTime",
                                       "SortOrder": "Descending", "MaxResults": 100}
            if status:
                request["ModelApprovalStatus"] = status
            if token:
                request["NextToken"] = token
            try:
                page = sm.list_model_packages(**request)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in _MISSING_GROUP and not out and _group_missing(clients, group):
                    return []
                raise
            out.extend(page.get("ModelPackageSummaryList", []))
            token = page.get("NextToken")
            if not token:
                break
    out.sort(key=_version_number, reverse=True)
    return out


def _group_missing(clients: Clients, group: str) -> bool:
    try:
        clients.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
        return False
    except botocore.exceptions.ClientError as exc:
        return error_code(exc) in _MISSING_GROUP


def _version_number(summary: Mapping[str, Any]) -> int:
    number = summary.get("ModelPackageVersion")
    if number is None:
        number = str(summary.get("ModelPackageArn", "")).rsplit("/", 1)[-1]
    try:
        return int(number)
    except (TypeError, ValueError):
        return -1


def describe(clients: Clients, arn: str) -> Version:
    with refused("DescribeModelPackage", arn):
        return version_from_description(clients.sagemaker.describe_model_package(ModelPackageName=arn), clients.s3)


def list_versions(clients: Clients, group: str, limit: Optional[int] = None, status: Optional[str] = None) -> List[Version]:
    """The group's versions, newest first (at most `limit`), each described."""
    summaries = _summaries(clients, group, status)
    if limit is not None:
        summaries = summaries[:limit]
    return [describe(clients, s["ModelPackageArn"]) for s in summaries]


def champion(clients: Clients, group: str) -> Optional[Version]:
    """The newest Approved version of the group, or None."""
    approved = _summaries(clients, group, APPROVED)
    # Filter again: an emulator or an older API may ignore the status filter.
    approved = [s for s in approved if s.get("ModelApprovalStatus", APPROVED) == APPROVED]
    return describe(clients, approved[0]["ModelPackageArn"]) if approved else None


def champion_input(clients: Clients, config) -> Dict[str, Any]:
    """The execution input's Champion for a run of `config`: the champion's
    gate values and, per champion rule, the value to reach (gate.champion_bars)."""
    from . import gate

    group = config.registry.model_package_group
    found = champion(clients, group)
    if found is None:
        return {"Reason": f"no Approved version in model package group {group}"}
    metrics = {m: found.metrics[m] for m in _gate_metrics(config) if m in found.metrics}
    data: Dict[str, Any] = {"Version": found.version, "Arn": found.arn, "Metrics": metrics}
    data["Bars"] = gate.champion_bars(config.gate, data)
    return data


def _gate_metrics(config) -> List[str]:
    seen: List[str] = []
    for rule in config.gate:
        if rule.metric not in seen:
            seen.append(rule.metric)
    return seen


# --------------------------------------------------------------------------- choosing a version


def _newest_text(versions: List[Version], count: int = 5) -> str:
    if not versions:
        return "the group has no versions"
    shown = ", ".join(f"{v.version} ({v.status}{', run ' + v.run_name if v.run_name else ''})" for v in versions[:count])
    return f"newest versions: {shown}"


def resolve(clients: Clients, group: str, version: Optional[str] = None, run: Optional[str] = None) -> Version:
    """The version named by --version (N, group/N or a model package ARN) or by
    --run (the run that registered it). Another group's version, or one that
    does not exist, is InvalidInput (exit 2) listing the newest versions."""
    if (version is None) == (run is None):
        raise InvalidInput("give --version N or --run NAME (one of them)")
    if version is not None:
        text = str(version).strip()
        wanted_group, number = group, text
        if ":model-package/" in text:
            text = text.split(":model-package/", 1)[1]
        if "/" in text:
            wanted_group, number = text.rsplit("/", 1)
        if wanted_group.lower() != group.lower():
            raise InvalidInput(f"version {version} belongs to model package group {wanted_group}, not to "
                               f"{group} (registry.model_package_group of this config)")
        if not number.isdigit():
            raise InvalidInput(f"--version must be a version number, group/N or a model package ARN, not '{version}'")
        summaries = _summaries(clients, group)
        for summary in summaries:
            if _version_number(summary) == int(number):
                return describe(clients, summary["ModelPackageArn"])
        newest = [describe(clients, s["ModelPackageArn"]) for s in summaries[:5]]
        raise InvalidInput(f"model package group {group} has no version {number}; {_newest_text(newest)}")
    summaries = _summaries(clients, group)
    newest: List[Version] = []
    for summary in summaries:
        described = describe(clients, summary["ModelPackageArn"])
        if described.run_name == run:
            return described
        if len(newest) < 5:
            newest.append(described)
    raise InvalidInput(f"no version of model package group {group} was registered by run {run}; {_newest_text(newest)}")


# --------------------------------------------------------------------------- deciding


def decider(by: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """Who decides: --by, else Jenkins' BUILD_USER_ID (build-user-vars plugin), else the OS user."""
    env = os.environ if env is None else env
    if by and by.strip():
        return by.strip()
    if env.get("BUILD_USER_ID"):
        return env["BUILD_USER_ID"]
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container without /etc/passwd entry
        return "unknown"


def decision_text(status: str, by: str, build_url: str = "", note: str = "", now: Optional[datetime] = None) -> str:
    """The ApprovalDescription (at most 1024 characters): who, when, where, why."""
    when = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = f"{status} by {' '.join(by.split())} at {when}"
    if build_url:
        text += f" (build {build_url.strip()})"
    note = " ".join((note or "").split())
    if note:
        text += f": {note}"
    return text[:1024]


@dataclass(frozen=True)
class DecisionResult:
    version: Version
    status: str
    changed: bool
    description: str = ""

    def summary(self) -> str:
        if not self.changed:
            return f"{self.status.lower()}: {self.version.name} is already {self.status}; nothing changed"
        return f"{self.status.lower()}: {self.version.name} is now {self.status} ({self.description})"


def decide(clients: Clients, version: Version, status: str, by: str, build_url: str = "", note: str = "",
           now: Optional[datetime] = None) -> DecisionResult:
    """UpdateModelPackage to `status` (Approved or Rejected) with who, when, the
    build and the note; a version already in that state is left alone."""
    if version.status == status:
        return DecisionResult(version, status, False)
    description = decision_text(status, by, build_url, note, now)
    request: Dict[str, Any] = {"ModelPackageArn": version.arn, "ModelApprovalStatus": status,
                               "ApprovalDescription": description}
    if version.properties:
        request["CustomerMetadataProperties"] = dict(version.properties)
    with refused("UpdateModelPackage", version.arn):
        clients.sagemaker.update_model_package(**request)
    return DecisionResult(describe(clients, version.arn), status, True, description)


# --------------------------------------------------------------------------- checksums


def sha256_of_s3(clients: Clients, uri: str, if_match: Optional[str] = None) -> str:
    """The object's SHA-256; with `if_match`, only while it still has that ETag (else
    AwsRefused saying it changed)."""
    bucket, key = split_s3(uri)
    digest = hashlib.sha256()
    request: Dict[str, Any] = {"Bucket": bucket, "Key": key}
    if if_match:
        request["IfMatch"] = if_match
    try:
        with refused("GetObject", uri):
            body = clients.s3.get_object(**request)["Body"]
            for chunk in iter(lambda: body.read(1024 * 1024), b""):
                digest.update(chunk)
    except AwsRefused as exc:
        if if_match and "PreconditionFailed" in exc.message:
            raise AwsRefused(f"{uri} changed after the run copied it (its ETag is no longer {if_match}): "
                             f"its SHA-256 is not recorded, so fetch-model refuses this version") from None
        raise
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelCopy:
    """The registry copy of a run's model.tar.gz (the CopyModel state, definition.py):
    where it is and the ETag CopyObject gave it."""

    uri: str
    etag: str


def model_copy(execution_input: Mapping[str, Any], output: Any) -> Optional[ModelCopy]:
    """The copy a registering run made, from its input and output; None when the run
    made none (a branch, or a state machine deployed before the copy states)."""
    copied = ((output or {}).get("registry") or {}).get("model") if isinstance(output, dict) else None
    uri = execution_input.get("RegistryModelS3Uri")
    if isinstance(copied, dict) and isinstance(copied.get("ETag"), str) and isinstance(uri, str):
        return ModelCopy(uri, copied["ETag"])
    return None


def evaluation_read_from(execution_input: Mapping[str, Any], output: Any) -> Dict[str, Any]:
    """The execution input with EvaluationKey naming what the report should read:
    the registry copy of evaluation.json when the run made one (what the version
    names), else the run's own."""
    copied = ((output or {}).get("registry") or {}).get("evaluation") if isinstance(output, dict) else None
    key = execution_input.get("RegistryEvaluationKey")
    if isinstance(copied, dict) and isinstance(key, str):
        return dict(execution_input, EvaluationKey=key)
    return dict(execution_input)


def record_checksum(clients: Clients, arn: str, copy: Optional[ModelCopy] = None) -> str:
    """Hash the registered model.tar.gz and record it on the version
    (CustomerMetadataProperties ModelSha256), for `fetch-model` to verify. With
    `copy` (the run's registry copy), only when the version names that copy and the
    object still has the copy's ETag: the recorded hash is of the bytes the state
    machine copied after the gate, never of anything written later."""
    version = describe(clients, arn)
    if not version.model_data_url:
        raise AwsRefused(f"{version.name} names no model artifact (ModelDataUrl)")
    if copy and version.model_data_url != copy.uri:
        raise AwsRefused(f"{version.name} names {version.model_data_url}, not the registry copy {copy.uri} "
                         f"its run made: its SHA-256 is not recorded")
    digest = sha256_of_s3(clients, version.model_data_url, if_match=copy.etag if copy else None)
    if version.sha256 == digest:
        return digest
    properties = dict(version.properties, **{SHA256_KEY: digest})
    request: Dict[str, Any] = {"ModelPackageArn": arn, "CustomerMetadataProperties": properties}
    if version.status:
        request["ModelApprovalStatus"] = version.status
    if version.approval_description:
        request["ApprovalDescription"] = version.approval_description
    with refused("UpdateModelPackage", arn):
        clients.sagemaker.update_model_package(**request)
    return digest


def to_json(versions: List[Version]) -> str:
    return json.dumps([v.to_dict() for v in versions], indent=2, sort_keys=True, default=str)
