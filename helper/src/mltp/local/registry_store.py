"""The local model registry: the model package group of a repo, kept under
`<repo>/.mltp/registry/<group>/` between local runs.

The embedded emulator forgets everything when mltp exits, so a local run (and
`mltp models|approve|reject|fetch-model --local`) restores the group into the
fresh emulator at start and saves it again at the end:

  registry.json   every version as DescribeModelPackage returned it
  v<N>/           the files its S3 URIs point to: model.tar.gz, evaluation.json

Restoring goes through the API, as a user would: CreateModelPackageGroup, then
per version in order the objects back into S3, CreateModelPackage with the
saved fields, and UpdateModelPackage for a decision (status and
ApprovalDescription). Versions are numbered in creation order, so each gets
its old number back; only the creation time, which the API cannot set, is put
back into the emulator directly. The store is plain JSON and files: robust to
moto upgrades, and readable.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Dict, List, Optional

import botocore.exceptions

from .. import owned
from . import objects
from ..aws import Clients, error_code
from ..registry import split_s3

FORMAT = 1
_CREATE_FIELDS = ("ModelPackageDescription", "InferenceSpecification", "ModelMetrics", "CustomerMetadataProperties",
                  "MetadataProperties", "ModelApprovalStatus")


def store_dir(repo: Path, group: str) -> Path:
    """`.mltp/registry/<group>/`; a symlinked `.mltp` or `.mltp/registry` is refused (exit 2)."""
    return owned.owned_dir(repo, "registry", group)


def _artifact_uris(description: Dict[str, Any]) -> List[str]:
    uris = []
    for container in (description.get("InferenceSpecification") or {}).get("Containers") or []:
        if container.get("ModelDataUrl"):
            uris.append(container["ModelDataUrl"])
    stats = (((description.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}).get("S3Uri")
    if stats:
        uris.append(stats)
    return [u for u in uris if u.startswith("s3://")]


def _ensure_bucket(clients: Clients, bucket: str) -> None:
    try:
        clients.s3.head_bucket(Bucket=bucket)
        return
    except botocore.exceptions.ClientError:
        pass
    kwargs: Dict[str, Any] = {"Bucket": bucket}
    if clients.region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": clients.region}
    try:
        clients.s3.create_bucket(**kwargs)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def restore(clients: Clients, repo: Path, group: str, description: str = "") -> int:
    """Re-create the saved group in the emulator; returns how many versions."""
    from . import emulator

    path = store_dir(repo, group) / "registry.json"
    if not path.is_file():
        return 0
    data = json.loads(path.read_text(encoding="utf-8"))
    sm = clients.sagemaker
    try:
        sm.describe_model_package_group(ModelPackageGroupName=group)
    except botocore.exceptions.ClientError:
        sm.create_model_package_group(ModelPackageGroupName=group,
                                      ModelPackageGroupDescription=(data.get("description") or description or group)[:1024])
    versions = sorted(data.get("versions", []), key=lambda v: int(v["ModelPackageVersion"]))
    buckets = set()  # made (or found) already: every version's files are in the same one or two
    for saved in versions:
        folder = store_dir(repo, group) / f"v{saved['ModelPackageVersion']}"
        for uri, name in (saved.get("mltp:files") or {}).items():
            local = folder / name
            if local.is_file():
                bucket, key = split_s3(uri)
                if bucket not in buckets:
                    _ensure_bucket(clients, bucket)
                    buckets.add(bucket)
                objects.put_file(clients.s3, str(local), bucket, key)
        request = {k: saved[k] for k in _CREATE_FIELDS if saved.get(k) is not None}
        arn = sm.create_model_package(ModelPackageGroupName=group, **request)["ModelPackageArn"]
        if saved.get("ApprovalDescription"):
            update: Dict[str, Any] = {"ModelPackageArn": arn, "ApprovalDescription": saved["ApprovalDescription"]}
            if saved.get("ModelApprovalStatus"):
                update["ModelApprovalStatus"] = saved["ModelApprovalStatus"]
            if saved.get("CustomerMetadataProperties"):
                update["CustomerMetadataProperties"] = saved["CustomerMetadataProperties"]
            sm.update_model_package(**update)
        if saved.get("CreationTime"):
            emulator.set_model_package_creation_time(arn, datetime.fromisoformat(saved["CreationTime"]))
    return len(versions)


def save(clients: Clients, repo: Path, group: str) -> int:
    """Write the group's versions (and their files) to the store; returns how many."""
    sm = clients.sagemaker
    try:
        group_info = sm.describe_model_package_group(ModelPackageGroupName=group)
    except botocore.exceptions.ClientError:
        return 0  # nothing registered yet
    target = store_dir(repo, group)
    versions = []
    token: Optional[str] = None
    summaries: List[Dict[str, Any]] = []
    while True:
        request: Dict[str, Any] = {"ModelPackageGroupName": group, "MaxResults": 100}
        if token:
            request["NextToken"] = token
        page = sm.list_model_packages(**request)
        summaries.extend(page.get("ModelPackageSummaryList", []))
        token = page.get("NextToken")
        if not token:
            break
    for summary in summaries:
        described = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        described.pop("ResponseMetadata", None)
        number = int(described.get("ModelPackageVersion") or summary["ModelPackageArn"].rsplit("/", 1)[-1])
        folder = target / f"v{number}"
        files: Dict[str, str] = {}
        for index, uri in enumerate(_artifact_uris(described)):
            name = f"{index}-{uri.rsplit('/', 1)[-1] or 'object'}"
            local = folder / name
            if not local.is_file():
                bucket, key = split_s3(uri)
                try:
                    folder.mkdir(parents=True, exist_ok=True)
                    objects.get_file(clients.s3, bucket, key, str(local))
                except botocore.exceptions.ClientError:
                    continue
            files[uri] = name
        described["mltp:files"] = files
        versions.append(described)
    versions.sort(key=lambda v: int(v["ModelPackageVersion"]))
    body = {"format": FORMAT, "group": group, "description": group_info.get("ModelPackageGroupDescription", ""),
            "versions": versions}
    target.mkdir(parents=True, exist_ok=True)
    owned.write_atomic(target / "registry.json",  # never through a link left in the store
                       (json.dumps(body, indent=2, sort_keys=True, default=_iso) + "\n").encode("utf-8"))
    return len(versions)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def forget(repo: Path, group: str) -> None:
    """Remove the saved group (tests, or a user starting over)."""
    owned.remove(store_dir(repo, group), owned.owned_dir(repo, "registry"))
