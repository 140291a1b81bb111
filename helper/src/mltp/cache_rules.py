"""The step cache's rules that the retrain trigger's Lambda function needs too
(docs/contract.md, 8.4): how a step's key is made of its parts, which records a
state machine may reuse, which of them is taken, and how S3 is read for it.

Standard library only, and no import from mltp: `mltp trigger install` ships
this file beside trigger_handler.py in the function's zip, so a retrain started
by the trigger decides exactly as `mltp start` does, from this one
implementation (step_cache, cache_index and plan use it). The S3 readers take
any boto3-shaped S3 client.
"""

import hashlib
import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

KEY_VERSION = 1  # bumped when what goes into a key changes: older records then never match
RECORD_VERSION = 1
PARTS = ("code", "requirements", "config", "image", "inputs")
STATIC_PARTS = PARTS[:4]  # what the repo and config fix; `inputs` is known only when a run starts
ROLES = ("preprocessing", "training", "evaluation")
STATES = {"preprocessing": "Preprocessing", "training": "Training", "evaluation": "Evaluation"}

# What each step hands on, as execution input keys (naming.ExecutionInput): a
# reused step's values are the earlier run's. `data` are the S3 locations that
# must still exist (and, locally, are kept): prefixes end with '/'.
OUTPUT_KEYS = {
    "preprocessing": ("TrainDataS3Uri", "ValidationDataS3Uri", "TestDataS3Uri"),
    "training": ("ModelArtifactS3Uri", "ModelArtifactCopySource"),
    "evaluation": ("EvaluationOutputS3Uri", "EvaluationS3Uri", "EvaluationKey", "EvaluationCopySource"),
}
DATA_KEYS = {
    "preprocessing": ("TrainDataS3Uri", "ValidationDataS3Uri", "TestDataS3Uri"),
    "training": ("ModelArtifactS3Uri",),
    "evaluation": ("EvaluationOutputS3Uri",),
}
RECORD_FIELDS = ("model", "state_machine", "role", "key", "run", "finished")
RECORD_MAX_BYTES = 64 * 1024
_RUN_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}")  # naming.run_name's fixed points (a test keeps them equal)


# --------------------------------------------------------------------------- the key


def digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def objects_digest(objects: Sequence[Tuple[str, str]]) -> str:
    """(relative key or path, ETag or SHA-256) pairs, in any order."""
    return digest(sorted(objects))


def fed(role: str, inputs: Mapping[str, str], keys: Mapping[str, str]) -> Dict[str, Any]:
    """What a step reads, as its `inputs` part digests it. Preprocessing: each
    input's objects_digest (input name -> digest, "" when not listed). Training:
    preprocessing's key. Evaluation: preprocessing's and training's keys (the
    test split and the model)."""
    if role == "preprocessing":
        return {"inputs": dict(inputs)}
    if role == "training":
        return {"preprocessing": keys["preprocessing"]}
    return {"preprocessing": keys["preprocessing"], "training": keys["training"]}


def combine(role: str, parts: Mapping[str, str]) -> str:
    """The key: a SHA-256 over the five parts' digests and this recipe's version."""
    return digest({"version": KEY_VERSION, "role": role, "parts": dict(parts)})


def chain(static: Mapping[str, Mapping[str, str]], inputs: Mapping[str, str]) -> Dict[str, Tuple[str, Dict[str, str]]]:
    """role -> (key, its five parts), from each step's four static parts and
    preprocessing's inputs (name -> objects_digest, every input of the step)."""
    keys: Dict[str, str] = {}
    out: Dict[str, Tuple[str, Dict[str, str]]] = {}
    for role in ROLES:
        parts = {p: static[role][p] for p in STATIC_PARTS}
        parts["inputs"] = digest(fed(role, inputs, keys))
        keys[role] = combine(role, parts)
        out[role] = (keys[role], parts)
    return out


# --------------------------------------------------------------------------- records


def is_run_name(text: Any) -> bool:
    """A name naming.run_name keeps as it is: [A-Za-z0-9_-], 1 to 80, no '-' at either end."""
    return isinstance(text, str) and bool(_RUN_NAME.fullmatch(text)) and text.strip("-") == text


def finished_at(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def expired(finished: datetime, now: datetime, days: int) -> bool:
    return now - finished > timedelta(days=days)


def read_record(text: Any, model: str, state_machine: str, role: str, bucket: str,
                run_prefix: Callable[[str], str]) -> Optional[Dict[str, Any]]:
    """A record's fields, or None when it is not one this state machine may
    reuse: not a record of this version, another model, state machine or step,
    a run name mltp never gives, or an output outside its own run's folder
    (`run_prefix(run)`: `<prefix>/<name>/runs/<run>/` on the default branch)."""
    try:
        raw = json.loads(text)
        fields = {k: raw[k] for k in RECORD_FIELDS}
        fields["parts"] = dict(raw.get("parts") or {})
        fields["outputs"] = dict(raw.get("outputs") or {})
        fields["version"] = int(raw.get("version", 0))
        finished_at(fields["finished"])
    except (TypeError, ValueError, KeyError, AttributeError):
        return None
    if (fields["version"] != RECORD_VERSION or fields["model"] != model or fields["state_machine"] != state_machine
            or fields["role"] != role or not is_run_name(fields["run"])):
        return None
    if set(fields["outputs"]) != set(OUTPUT_KEYS[role]) or not _inside(fields["outputs"], bucket,
                                                                          run_prefix(fields["run"])):
        return None
    return fields


def _inside(outputs: Mapping[str, Any], bucket: str, runs: str) -> bool:
    """Every output names a place in the run's folder (s3://bucket/key, bucket/key, or the key alone)."""
    allowed = (f"s3://{bucket}/{runs}", f"{bucket}/{runs}", runs)
    for value in outputs.values():
        if not isinstance(value, str) or ".." in value.split("/") or not value.startswith(allowed):
            return False
    return True


def pick(records: Iterable, now: datetime, days: int, finished: Callable[[Any], datetime],
         available: Callable[[Any], bool]) -> Tuple[Optional[Any], Optional[Any]]:
    """(the newest record not older than `days` whose outputs are `available`,
    the newest one passed over because its outputs are gone). Records of one key."""
    gone = None
    for record in sorted(records, key=finished, reverse=True):
        if expired(finished(record), now, days):
            break  # the rest are older still
        if available(record):
            return record, gone
        gone = gone or record
    return None, gone


# --------------------------------------------------------------------------- S3


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def listed_objects(s3, source: str, check: Optional[Callable[[], None]] = None) -> List[Tuple[str, str]]:
    """An input's objects as (key relative to `source`, ETag), folder markers left
    out. `check` is called before each page (the trigger's time budget raises)."""
    bucket, prefix = split_s3(source)
    objects = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        if check is not None:
            check()
        for entry in page.get("Contents", []):
            if not entry["Key"].endswith("/"):
                objects.append((entry["Key"][len(prefix):], entry.get("ETag", "")))
    return objects


def record_texts(s3, bucket: str, prefix: str) -> Iterator[bytes]:
    """The bodies of the records under `prefix` (.json objects of at most 64 KiB)."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".json") or item.get("Size", 0) > RECORD_MAX_BYTES:
                continue
            yield s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()


def outputs_present(s3, role: str, outputs: Mapping[str, str]) -> bool:
    """Every output of the step is still there (`mltp prune` may have removed the run)."""
    for name in DATA_KEYS[role]:
        bucket, key = split_s3(outputs[name])
        if not s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("KeyCount", 0):
            return False
    return True
