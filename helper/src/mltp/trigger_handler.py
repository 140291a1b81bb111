"""The Lambda function that retrains a model when new data lands.

`mltp trigger install` zips this file and `cache_rules.py` beside it and
deploys them (Python runtime, nothing beyond boto3), so it imports only the
standard library, boto3 and cache_rules, and repeats the few naming rules it
needs from `mltp.naming` (a test keeps the two equal).

How a burst of objects becomes one run:

- Every S3 "object created" event for a watched prefix (an S3 notification or
  the EventBridge form of it) rewrites one small `pending.json` object. Events
  older than the last consumed burst are duplicates or late deliveries of data
  a run already read: they change nothing.
- A sweep (the same function, called every minute by an EventBridge schedule,
  and right after each event) starts a run once the pending burst is complete:
  no new object for `quiet` seconds, or, with a marker, as soon as the marker
  object has landed.
- The run is named from the burst (its last write time and ETag), so two
  sweeps, or a redelivered marker event, compute the same name and Step
  Functions starts it once.
- While a retrain of this model is RUNNING, nothing starts: the burst stays
  pending and the first sweep after that run ends starts it.

The code a retrain runs is the code of the last successful default-branch run:
`mltp wait` records its execution input in `last-good.json`, and the run-specific
parts (run name, job names, run folder) are derived here for the new run.

The step cache (docs/contract.md, 8.4): `last-good.json` also holds, per step,
the four parts of its key the repo fixes, whether its cache is on and its
expiry. Before starting a run the function lists the inputs (their ETags),
completes each key with cache_rules, the code `mltp start` uses, looks up the
default branch's records, and passes `Cache` as `mltp start` would: a step
whose key did not change is taken from the run that made it.
"""

import datetime as _dt
import hashlib
import json
import os
import time
import urllib.parse
from typing import Any, Dict, List, Optional, Tuple

try:  # mltp's module; in the function's zip, the file beside this one
    from . import cache_rules
except ImportError:
    import cache_rules

RUN_PREFIX = "retrain-"
USER_AGENT = "mltp-trigger/1"
POINTER = "last-good.json"
PENDING = "pending.json"
CONSUMED = "consumed.json"
JOB_ABBREV = {"preprocessing": "prep", "training": "train", "evaluation": "eval"}
_JOB_KEYS = {"preprocessing": "PreprocessingJobName", "training": "TrainingJobName", "evaluation": "EvaluationJobName"}


class Settings:
    """What `mltp trigger install` put into the function's environment."""

    def __init__(self, env: Dict[str, str]):
        self.state_machine_arn = env["MLTP_STATE_MACHINE_ARN"]
        self.state_bucket = env["MLTP_STATE_BUCKET"]
        self.state_prefix = env["MLTP_STATE_PREFIX"]  # ends with '/'
        # The model's own S3 area `<prefix>/<name>/`, where every run writes: the
        # state prefix is `<prefix>/<name>/trigger/` (mltp.trigger.state_prefix).
        self.own_prefix = self.state_prefix[:-len("trigger/")] if self.state_prefix.endswith("/trigger/") \
            else self.state_prefix
        self.watch: List[Dict[str, str]] = json.loads(env["MLTP_WATCH"])  # [{input, bucket, prefix}]
        self.marker = env.get("MLTP_MARKER") or None
        self.quiet_seconds = int(env.get("MLTP_QUIET_SECONDS") or 0)

    @classmethod
    def from_env(cls) -> "Settings":
        return cls(dict(os.environ))

    def key(self, name: str) -> str:
        return self.state_prefix + name


# --------------------------------------------------------------------------- events


class ObjectEvent:
    def __init__(self, bucket: str, key: str, time: _dt.datetime, sequencer: str):
        self.bucket, self.key, self.time, self.sequencer = bucket, key, time, sequencer


def parse_time(text: str) -> _dt.datetime:
    """'2026-11-26T14:00:00.123Z' (S3 and EventBridge) as an aware datetime."""
    text = text.strip().replace("Z", "+00:00")
    if "." in text:  # fromisoformat on 3.9/3.10 wants exactly 3 or 6 fraction digits
        head, _, rest = text.partition(".")
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]  # the fraction, not the zone's digits
        zone = rest[len(digits):] or "+00:00"
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    value = _dt.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)


def object_events(event: Dict[str, Any]) -> List[ObjectEvent]:
    """Object-created events in either shape AWS delivers: S3 notifications
    (Records, keys URL-encoded) or EventBridge ("Object Created", keys plain)."""
    found = []
    for record in event.get("Records") or []:
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated:"):
            continue
        s3 = record.get("s3", {})
        key = urllib.parse.unquote_plus(s3.get("object", {}).get("key", ""))
        found.append(ObjectEvent(s3.get("bucket", {}).get("name", ""), key, parse_time(record["eventTime"]),
                                 str(s3.get("object", {}).get("sequencer", ""))))
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        detail = event.get("detail", {})
        found.append(ObjectEvent(detail.get("bucket", {}).get("name", ""), detail.get("object", {}).get("key", ""),
                                 parse_time(event["time"]), str(detail.get("object", {}).get("sequencer", ""))))
    return found


def is_schedule(event: Dict[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


def watched(settings: Settings, item: ObjectEvent) -> Optional[str]:
    """The input an object belongs to, or None: outside every watched prefix,
    anything under the model's own area (its state objects, and the runs' own
    writes, which would otherwise start retrain after retrain: validate refuses
    such a config, this is the second line of defence), folder placeholders,
    or (with a marker) not the marker."""
    if item.bucket == settings.state_bucket and item.key.startswith(settings.own_prefix):
        return None
    if not item.key or item.key.endswith("/"):
        return None
    if settings.marker and item.key.rsplit("/", 1)[-1] != settings.marker:
        return None
    for spec in settings.watch:
        if item.bucket == spec["bucket"] and item.key.startswith(spec["prefix"]):
            return spec["input"]
    return None


# --------------------------------------------------------------------------- the run's input


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def retrain_input(pointer: Dict[str, Any], run: str) -> Dict[str, Any]:
    """The last good run's execution input with its run-specific parts redone
    for `run`, exactly as `mltp.naming.execution_input` derives them. Keys this
    function does not know are carried over unchanged."""
    model, machine, bucket, prefix = pointer["model"], pointer["state_machine"], pointer["bucket"], pointer["prefix"]
    body = dict(pointer["input"])
    run_id = _digest(f"{machine}/{run}", 12)
    jobs = {role: f"{model}-{abbrev}-{run_id}" for role, abbrev in JOB_ABBREV.items()}
    runs = f"s3://{bucket}/{prefix}/{model}/runs/{run}/"
    body.update(
        RunName=run,
        Register=True,
        PreprocessingJobName=jobs["preprocessing"],
        TrainingJobName=jobs["training"],
        EvaluationJobName=jobs["evaluation"],
        TrainDataS3Uri=f"{runs}preprocessing/train/",
        ValidationDataS3Uri=f"{runs}preprocessing/validation/",
        TestDataS3Uri=f"{runs}preprocessing/test/",
        PreprocessingS3Uri=f"{runs}preprocessing/",
        ModelOutputS3Uri=f"{runs}model/",
        ModelArtifactS3Uri=f"{runs}model/{jobs['training']}/output/model.tar.gz",
        EvaluationOutputS3Uri=f"{runs}evaluation/",
        EvaluationS3Uri=f"{runs}evaluation/evaluation.json",
        EvaluationBucket=bucket,
        EvaluationKey=f"{prefix}/{model}/runs/{run}/evaluation/evaluation.json",
        # The step cache's decisions (retrain_cache); none when the pointer has no
        # `cache` (written before mltp recorded it): every step runs.
        Cache={},
    )
    # Set even when the pointer predates them: the deployed definition copies to them.
    registry = f"{prefix}/{model}/registry/{run}/"
    body.update(
        ModelArtifactCopySource=f"{bucket}/{prefix}/{model}/runs/{run}/model/{jobs['training']}/output/model.tar.gz",
        EvaluationCopySource=f"{bucket}/{prefix}/{model}/runs/{run}/evaluation/evaluation.json",
        RegistryModelKey=f"{registry}model.tar.gz",
        RegistryEvaluationKey=f"{registry}evaluation.json",
        RegistryModelS3Uri=f"s3://{bucket}/{registry}model.tar.gz",
        RegistryEvaluationS3Uri=f"s3://{bucket}/{registry}evaluation.json",
        # Spot training's checkpoints (mltp.spot): this run's own, never the last good run's.
        CheckpointS3Uri=f"{runs}checkpoints/",
    )
    return body


# --------------------------------------------------------------------------- the step cache


def cache_prefix(pointer: Dict[str, Any]) -> str:
    """The default branch's records, as mltp.cache_index.S3Index names them."""
    return f"{pointer['prefix']}/{pointer['model']}/cache/"


def run_prefix(pointer: Dict[str, Any], run: str) -> str:
    """A default-branch run's folder, as mltp.naming.run_prefix names it."""
    return f"{pointer['prefix']}/{pointer['model']}/runs/{run}/"


# The function may run 60 s (trigger.TIMEOUT_SECONDS): listing a huge input must
# not keep the run from ever starting, so after this long the cache is given up.
CACHE_SECONDS = 30.0


def _budget(seconds: float):
    deadline = time.monotonic() + seconds

    def check() -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"listing took over {seconds:g} s")
    return check


def retrain_cache(s3, pointer: Dict[str, Any], now: _dt.datetime) -> Tuple[Dict[str, Any], Dict[str, Any], str]:
    """(the run's `Cache`, the execution input values of the steps it reuses, a
    note when the cache could not be read), decided as mltp.plan does for `mltp
    start`: the keys of every step, the inputs listed only when a step has the
    cache on, the newest usable record of each such step. A pointer without
    `cache` (or of another key version) gives the empty `Cache` of older versions."""
    spec = pointer.get("cache")
    try:
        steps = spec["steps"]
        static = {role: {p: str(steps[role]["parts"][p]) for p in cache_rules.STATIC_PARTS}
                  for role in cache_rules.ROLES}
        unlisted = {str(item["name"]): "" for item in spec["inputs"]}
    except (TypeError, KeyError):
        return {}, {}, ""
    if spec.get("version") != cache_rules.KEY_VERSION:
        return {}, {}, ""
    enabled = [role for role in cache_rules.ROLES if steps[role].get("cache")]
    note, reuse = "", {}
    check = _budget(CACHE_SECONDS)
    try:
        listed = {item["name"]: cache_rules.objects_digest(cache_rules.listed_objects(s3, item["source"], check))
                  for item in spec["inputs"]} if enabled else unlisted
        keys = cache_rules.chain(static, listed)
        for role in enabled:
            reuse[role] = _lookup(s3, pointer, role, keys[role][0], int(steps[role].get("expire_days", 30)), now)
    except Exception as exc:  # noqa: BLE001  the cache is a saving, not a must (mltp.commands.plan.for_run)
        code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
        note = f"cannot read the step cache ({code or exc}); every step runs"
        enabled, reuse, keys = [], {}, cache_rules.chain(static, unlisted)
    hits = {role: record for role, record in reuse.items() if record is not None}
    cache = {
        "keys": {cache_rules.STATES[role]: keys[role][0] for role in cache_rules.ROLES},
        "parts": {cache_rules.STATES[role]: keys[role][1] for role in cache_rules.ROLES},
        "cached": [cache_rules.STATES[role] for role in enabled],
        "inputs_listed": bool(enabled),
        "reuse": {cache_rules.STATES[role]: record["run"] for role, record in hits.items()},
    }
    overrides: Dict[str, Any] = {}
    for record in hits.values():
        overrides.update(record["outputs"])
    return cache, overrides, note


def _lookup(s3, pointer: Dict[str, Any], role: str, key: str, days: int, now: _dt.datetime) -> Optional[Dict[str, Any]]:
    """The newest usable record of the step with this key (mltp.plan._lookup's choice)."""
    records = []
    for body in cache_rules.record_texts(s3, pointer["bucket"], f"{cache_prefix(pointer)}{role}/{key}/"):
        record = cache_rules.read_record(body, pointer["model"], pointer["state_machine"], role, pointer["bucket"],
                                         lambda run: run_prefix(pointer, run))
        if record is not None and record["key"] == key:
            records.append(record)
    hit, _ = cache_rules.pick(records, now, days, lambda r: cache_rules.finished_at(r["finished"]),
                              lambda r: cache_rules.outputs_present(s3, role, r["outputs"]))
    return hit


def run_name_for(stamp: _dt.datetime, identity: str) -> str:
    """'retrain-20261126T140000-1a2b3c4d5e': readable, and the same for every
    sweep or redelivery of one burst."""
    return f"{RUN_PREFIX}{stamp.astimezone(_dt.timezone.utc):%Y%m%dT%H%M%S}-{_digest(identity, 10)}"


# --------------------------------------------------------------------------- S3 state


def _get_json(s3, bucket: str, key: str) -> Tuple[Optional[Dict[str, Any]], Optional[dict]]:
    try:
        answer = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None, None
    except Exception as exc:  # a 404 without the modelled error (HEAD-like answers)
        if getattr(exc, "response", {}).get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None, None
        raise
    return json.loads(answer["Body"].read() or b"{}"), answer


def _put_json(s3, bucket: str, key: str, value: Dict[str, Any]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(value, sort_keys=True).encode("utf-8"),
                  ContentType="application/json")


def _consumed_until(s3, settings: Settings) -> Optional[_dt.datetime]:
    consumed, _ = _get_json(s3, settings.state_bucket, settings.key(CONSUMED))
    return parse_time(consumed["until"]) if consumed and consumed.get("until") else None


# --------------------------------------------------------------------------- the handler


def _now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def handle(event: Dict[str, Any], s3, sfn, settings: Settings, now: Optional[_dt.datetime] = None) -> Dict[str, Any]:
    """Record new data, then sweep. Returns what happened (also logged)."""
    if is_schedule(event):
        return sweep(s3, sfn, settings, now)
    items = object_events(event)
    matched = [(item, watched(settings, item)) for item in items]
    matched = [(item, name) for item, name in matched if name]
    if not matched:
        return {"action": "ignored", "reason": "no watched object in the event", "objects": len(items)}
    consumed = _consumed_until(s3, settings)
    fresh = [(item, name) for item, name in matched if consumed is None or item.time > consumed]
    if not fresh:
        return {"action": "ignored", "reason": "already consumed by an earlier run (duplicate or late delivery)"}
    last, name = max(fresh, key=lambda pair: pair[0].time)
    # S3's LastModified has whole seconds; the write time kept in the body does not.
    pending = {"last_event": last.time.isoformat(), "input": name, "key": f"s3://{last.bucket}/{last.key}",
               "written": (now or _now()).isoformat()}
    if settings.marker:  # the marker names the run: a redelivery names the same one
        pending["run"] = run_name_for(last.time, f"{last.bucket}/{last.key}/{last.sequencer}")
    _put_json(s3, settings.state_bucket, settings.key(PENDING), pending)
    return sweep(s3, sfn, settings, now, consumed=consumed)


def _running_retrains(sfn, machine_arn: str) -> List[str]:
    names = []
    pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn, statusFilter="RUNNING")
    for page in pages:
        names += [e["name"] for e in page.get("executions", []) if e["name"].startswith(RUN_PREFIX)]
    return names


_UNREAD = object()


def sweep(s3, sfn, settings: Settings, now: Optional[_dt.datetime] = None, consumed: Any = _UNREAD) -> Dict[str, Any]:
    """Start the pending burst's run when it is complete and no retrain runs.
    `consumed`: consumed.json's time when the caller has just read it."""
    now = now or _now()
    pending, answer = _get_json(s3, settings.state_bucket, settings.key(PENDING))
    if pending is None:
        return {"action": "idle", "reason": "no new data"}
    written = answer["LastModified"]
    if pending.get("written"):
        written = max(written, parse_time(pending["written"]))
    if consumed is _UNREAD:
        consumed = _consumed_until(s3, settings)
    if consumed is not None and written <= consumed:
        return {"action": "idle", "reason": "no new data since the last retrain"}
    quiet = 0 if settings.marker else settings.quiet_seconds
    if quiet and (now - written).total_seconds() < quiet:
        return {"action": "waiting", "reason": f"new data; waiting for {quiet} s without new objects"}
    run = pending.get("run") or run_name_for(written, f"{answer.get('ETag', '')}/{written.isoformat()}")
    running = _running_retrains(sfn, settings.state_machine_arn)
    if run in running:  # this burst's own run (a redelivery raced ahead of consumed.json)
        _put_json(s3, settings.state_bucket, settings.key(CONSUMED), {"until": now.isoformat(), "run": run})
        return {"action": "already-started", "run": run}
    if running:
        return {"action": "waiting", "reason": f"a retrain is running ({running[0]})"}
    pointer, _ = _get_json(s3, settings.state_bucket, settings.key(POINTER))
    # Every object created before the run starts is in the data it reads (the
    # preprocessing job lists the prefix later still), so events up to now are
    # consumed: their redeliveries must not start another run.
    done = {"until": now.isoformat(), "run": None}
    if pointer is None:
        _put_json(s3, settings.state_bucket, settings.key(CONSUMED), done)
        return {"action": "skipped", "reason": "no successful default-branch run yet: no code to retrain with"}
    body = retrain_input(pointer, run)
    cache, reused, note = retrain_cache(s3, pointer, now)
    body.update(reused)
    body["Cache"] = cache
    action = "started"
    try:
        sfn.start_execution(stateMachineArn=settings.state_machine_arn, name=run,
                            input=json.dumps(body, sort_keys=True))
    except sfn.exceptions.ExecutionAlreadyExists:
        action = "already-started"
    done["run"] = run
    _put_json(s3, settings.state_bucket, settings.key(CONSUMED), done)
    result = {"action": action, "run": run}
    if cache.get("cached"):
        result["cached"] = dict(cache["reuse"])  # step -> the run it is taken from
    if note:
        result["cache"] = note
    return result


def handler(event, context):
    """The Lambda entry point: one JSON line per call in the function's log."""
    import boto3

    from botocore.config import Config

    settings = Settings.from_env()
    named = Config(user_agent_extra=USER_AGENT)  # the function's calls say whose they are (CloudTrail, tests)
    result = handle(event, boto3.client("s3", config=named), boto3.client("stepfunctions", config=named), settings)
    print(json.dumps(result, sort_keys=True))
    return result
