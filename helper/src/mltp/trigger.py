"""`mltp trigger install | remove | status`: retraining when new data lands.

S3 "object created" notifications on the watched prefixes of `retrain.on_inputs`
invoke a Lambda function (`mltp/trigger_handler.py`, zipped from this package),
which starts a run of the default branch's state machine on the code of the
last successful default-branch run. An EventBridge schedule calls the same
function every minute to start a burst once it is complete (quiet period) or
once a running retrain has ended.

Install is idempotent, resource by resource (created / updated / unchanged),
and merges with a bucket's notifications: configurations of others are put
back untouched, ours are recognised by their exact Id (`mltp.<name>.<input>`;
the ambiguous `mltp-<name>-<input>` of older versions only exactly, on our function).
The pointer to the last good run (`last-good.json`) is written by `wait`.
"""

import base64
import hashlib
import io
import json
import time
import urllib.parse
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import botocore.exceptions

from . import runs
from .aws import Clients, error_code, refused
from .context import RunContext
from .errors import AwsRefused, InvalidInput

RUNTIME = "python3.12"
HANDLER = "trigger_handler.handler"
TIMEOUT_SECONDS = 60
SWEEP_SCHEDULE = "rate(1 minute)"
EVENTS = ["s3:ObjectCreated:*"]
POINTER = "last-good.json"
_MISSING = ("ResourceNotFoundException", "NoSuchEntity", "NoSuchKey", "404")
# A role created a moment ago is not yet visible to Lambda (IAM is eventually
# consistent): CreateFunction says it "cannot be assumed" for some seconds.
ROLE_PROPAGATION_TRIES = 12
ROLE_PROPAGATION_SECONDS = 5.0
_sleep = time.sleep
_backoff = time.sleep  # the pause before a notification configuration is read back

LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


# --------------------------------------------------------------------------- names


def function_name(ctx: RunContext) -> str:
    return f"mltp-trigger-{ctx.config.name}"


def rule_name(ctx: RunContext) -> str:
    return f"mltp-trigger-{ctx.config.name}-sweep"


def role_name(ctx: RunContext) -> str:
    return f"mltp-trigger-{ctx.config.name}"


# Bucket notifications of a model are recognised by exact Id. The separator '.'
# occurs neither in a model name ([a-z0-9-]) nor in an input name ([A-Za-z0-9_-]),
# so `mltp.<name>.<input>` is unambiguous: model `fraud` never claims an entry of
# `fraud-detection`. S3 allows Ids far longer than the 4+63+64+2 characters this takes.
NOTIFICATION_SEPARATOR = "."


def notification_id(ctx: RunContext, input_name: str) -> str:
    return NOTIFICATION_SEPARATOR.join(("mltp", ctx.config.name, input_name))


def legacy_notification_id(name: str, input_name: str) -> str:
    """The Id of earlier versions (`mltp-<name>-<input>`), ambiguous across models;
    recognised only exactly and only on an entry that invokes this model's function."""
    return f"mltp-{name}-{input_name}"


def permission_id(bucket: str) -> str:
    """The Lambda permission's StatementId for S3 notifications from `bucket`.
    Bucket names ([a-z0-9.-]) are kept as they are ('.' is a valid StatementId
    character), so `a.b` and `a-b` get different ids."""
    return f"mltp-s3-{bucket}"


SCHEDULE_PERMISSION_ID = "mltp-schedule"


def state_prefix(ctx: RunContext) -> str:
    """Where the trigger keeps its state, beside the model's runs in S3."""
    return f"{ctx.config.aws.prefix}/{ctx.config.name}/trigger/"


def pointer_key(ctx: RunContext) -> str:
    return state_prefix(ctx) + POINTER


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def watched(ctx: RunContext) -> List[Dict[str, str]]:
    retrain = _retrain(ctx)
    out = []
    for item in retrain.on_inputs:
        bucket, prefix = split_s3(item.source)
        out.append({"input": item.name, "bucket": bucket, "prefix": prefix})
    return out


def _retrain(ctx: RunContext):
    if ctx.config.retrain is None:
        raise InvalidInput(f"{ctx.config.where('retrain')}: retrain: not set; add e.g. "
                           "`retrain: {on_inputs: [raw], quiet_minutes: 10}` (see docs/contract.md)")
    return ctx.config.retrain


def _default_branch_only(ctx: RunContext, verb: str) -> None:
    if not ctx.register:
        raise InvalidInput(f"trigger {verb} works on the default branch only (this is branch "
                           f"'{ctx.branch}'{', a pull request' if ctx.is_pull_request else ''})")


# --------------------------------------------------------------------------- what gets deployed


# The function's files: the handler and the step cache's rules it shares with
# mltp (cache_rules.py: stdlib only, so the key and the record rules are one code).
FUNCTION_FILES = ("trigger_handler.py", "cache_rules.py")


def code_zip() -> bytes:
    """The handler as a deterministic zip (fixed timestamps and modes), so the
    same mltp version always gives the same CodeSha256 and install can say unchanged."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in FUNCTION_FILES:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (Path(__file__).parent / name).read_bytes())
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def environment(ctx: RunContext, machine_arn: str) -> Dict[str, str]:
    retrain = _retrain(ctx)
    env = {
        "MLTP_STATE_MACHINE_ARN": machine_arn,
        "MLTP_STATE_BUCKET": ctx.config.aws.bucket,
        "MLTP_STATE_PREFIX": state_prefix(ctx),
        "MLTP_WATCH": json.dumps(watched(ctx), sort_keys=True, separators=(",", ":")),
    }
    if retrain.marker:
        env["MLTP_MARKER"] = retrain.marker
    else:
        env["MLTP_QUIET_SECONDS"] = str((retrain.quiet_minutes or 0) * 60)
    return env


def role_policy(ctx: RunContext, machine_arn: str, partition: str = "aws") -> Dict[str, Any]:
    """Least privilege for the function: read/write its state objects, start
    and list runs of this one state machine, write its own logs; with a step's
    cache on, read the default branch's cache records and list the inputs and
    the default branch's runs (are a record's outputs still there?)."""
    state_objects = f"arn:{partition}:s3:::{ctx.config.aws.bucket}/{state_prefix(ctx)}*"
    account = machine_arn.split(":")[4]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "TriggerState", "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": state_objects},
            {"Sid": "TriggerStateList", "Effect": "Allow", "Action": "s3:ListBucket",
             "Resource": f"arn:{partition}:s3:::{ctx.config.aws.bucket}",
             "Condition": {"StringLike": {"s3:prefix": f"{state_prefix(ctx)}*"}}},
            {"Sid": "StartRetrain", "Effect": "Allow", "Action": ["states:StartExecution", "states:ListExecutions"],
             "Resource": machine_arn},
            {"Sid": "OwnLogs", "Effect": "Allow",
             "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"arn:{partition}:logs:{ctx.region}:{account}:log-group:/aws/lambda/{function_name(ctx)}:*"},
        ] + _cache_statements(ctx, partition),
    }


def _cache_statements(ctx: RunContext, partition: str) -> List[Dict[str, Any]]:
    """What trigger_handler.retrain_cache reads, only when a step has the cache on
    (policies._trigger says the same)."""
    cfg = ctx.config
    if not any(step.cache for step in cfg.steps.all()):
        return []
    own = f"{cfg.aws.prefix}/{cfg.name}/"
    out = [
        {"Sid": "StepCacheRecords", "Effect": "Allow", "Action": "s3:GetObject",
         "Resource": f"arn:{partition}:s3:::{cfg.aws.bucket}/{own}cache/*"},
        {"Sid": "StepCacheList", "Effect": "Allow", "Action": "s3:ListBucket",
         "Resource": f"arn:{partition}:s3:::{cfg.aws.bucket}",
         "Condition": {"StringLike": {"s3:prefix": [f"{own}cache/*", f"{own}runs/*"]}}},
    ]
    sources = sorted({split_s3(item.source) for item in cfg.steps.preprocessing.inputs})
    for index, (bucket, key) in enumerate(sources, start=1):
        out.append({"Sid": f"StepCacheInput{index}", "Effect": "Allow", "Action": "s3:ListBucket",
                    "Resource": f"arn:{partition}:s3:::{bucket}", "Condition": {"StringLike": {"s3:prefix": f"{key}*"}}})
    return out


# --------------------------------------------------------------------------- install


@dataclass
class TriggerReport:
    verb: str
    function: str
    lines: List[Tuple[str, str]] = field(default_factory=list)  # (what, outcome)

    def add(self, what: str, outcome: str) -> None:
        self.lines.append((what, outcome))

    @property
    def outcome(self) -> str:
        outcomes = {o for _, o in self.lines} - {"given"}  # a role passed in is not ours to change
        if self.verb == "install":
            if outcomes <= {"unchanged"}:
                return "unchanged"
            return "created" if outcomes <= {"created"} else "updated"
        return "removed" if "removed" in outcomes else "absent"

    def summary(self) -> str:
        head = f"trigger {self.verb}: {self.outcome} {self.function}"
        return "\n".join([head] + [f"  {what}: {outcome}" for what, outcome in self.lines])


def _ignore_missing(exc: botocore.exceptions.ClientError) -> bool:
    return error_code(exc) in _MISSING


def ensure_role(ctx: RunContext, clients: Clients, machine_arn: str) -> Tuple[str, str]:
    """The function's execution role `mltp-trigger-<name>` with its inline policy."""
    iam = clients.iam
    name = role_name(ctx)
    policy = json.dumps(role_policy(ctx, machine_arn, clients.sfn.meta.partition), sort_keys=True)
    with refused("trigger role", name):
        try:
            arn = iam.get_role(RoleName=name)["Role"]["Arn"]
            outcome = "unchanged"
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST),
                                  Description=f"mltp retraining trigger of {ctx.config.name}",
                                  Tags=[{"Key": "mltp:model", "Value": ctx.config.name}])["Role"]["Arn"]
            outcome = "created"
        try:
            current = iam.get_role_policy(RoleName=name, PolicyName="mltp-trigger")["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(urllib.parse.unquote(current))
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            current = None
        if current != json.loads(policy):
            iam.put_role_policy(RoleName=name, PolicyName="mltp-trigger", PolicyDocument=policy)
            outcome = "created" if outcome == "created" else "updated"
    return arn, outcome


def ensure_function(ctx: RunContext, clients: Clients, role_arn: str, env: Dict[str, str]) -> Tuple[str, str]:
    lam = clients.lambda_
    name = function_name(ctx)
    data = code_zip()
    wanted = {"Runtime": RUNTIME, "Handler": HANDLER, "Role": role_arn, "Timeout": TIMEOUT_SECONDS}
    with refused("trigger function", name):
        try:
            current = lam.get_function(FunctionName=name)["Configuration"]
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            for attempt in range(1, ROLE_PROPAGATION_TRIES + 1):
                try:
                    created = lam.create_function(
                        FunctionName=name, Code={"ZipFile": data},
                        Description=f"mltp: retrain {ctx.config.name} on new data",
                        Environment={"Variables": env}, Tags={"mltp:model": ctx.config.name}, **wanted,
                    )
                    return created["FunctionArn"], "created"
                except botocore.exceptions.ClientError as exc:
                    role_not_ready = (error_code(exc) == "InvalidParameterValueException"
                                      and "assumed" in str(exc))
                    if not role_not_ready or attempt == ROLE_PROPAGATION_TRIES:
                        raise
                _sleep(ROLE_PROPAGATION_SECONDS)
        changed = False
        if current.get("CodeSha256") != code_sha256(data):
            lam.update_function_code(FunctionName=name, ZipFile=data)
            changed = True
        have = {k: current.get(k) for k in wanted}
        have_env = current.get("Environment", {}).get("Variables", {})
        if have != wanted or have_env != env:
            _wait_updated(lam, name)
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": env}, **wanted)
            changed = True
        return current["FunctionArn"], "updated" if changed else "unchanged"


def _wait_updated(lam, name: str) -> None:
    """Lambda refuses a configuration update while a code update is in progress."""
    try:
        lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 60})
    except (botocore.exceptions.WaiterError, ValueError):
        pass


def _permission_statements(lam, name: str) -> Dict[str, dict]:
    try:
        policy = json.loads(lam.get_policy(FunctionName=name)["Policy"])
    except botocore.exceptions.ClientError as exc:
        if not _ignore_missing(exc):
            raise
        return {}
    return {s.get("Sid"): s for s in policy.get("Statement", [])}


@dataclass(frozen=True)
class Permission:
    """Who may invoke the function: one statement of its resource policy."""

    sid: str
    principal: str
    source_arn: str
    account: Optional[str] = None

    def kwargs(self, function: str) -> Dict[str, str]:
        out = {"FunctionName": function, "StatementId": self.sid, "Action": "lambda:InvokeFunction",
               "Principal": self.principal, "SourceArn": self.source_arn}
        if self.account:
            out["SourceAccount"] = self.account
        return out

    def matches(self, statement: dict) -> bool:
        """Whether an existing statement grants exactly this: same principal,
        action, SourceArn and SourceAccount (a Sid alone proves nothing)."""
        principal = statement.get("Principal")
        if isinstance(principal, dict):
            principal = principal.get("Service")
        action = statement.get("Action")
        condition = statement.get("Condition") or {}
        arns = {v for test in condition.values() if isinstance(test, dict)
                for k, v in test.items() if k.lower() == "aws:sourcearn"}
        accounts = {v for test in condition.values() if isinstance(test, dict)
                    for k, v in test.items() if k.lower() == "aws:sourceaccount"}
        return (principal == self.principal and action in ("lambda:InvokeFunction", ["lambda:InvokeFunction"])
                and statement.get("Effect", "Allow") == "Allow"
                and arns == {self.source_arn} and accounts == ({self.account} if self.account else set()))


def ensure_permissions(clients: Clients, name: str, wanted: List[Permission]) -> List[Tuple[str, str]]:
    """The function's resource policy holds exactly `wanted` among mltp's
    statements: a missing one is added, a differing one (another SourceArn,
    account or principal under the same Sid) replaced, and an mltp statement no
    longer wanted (a bucket dropped from the config, an old Sid) removed.
    Returns (sid, outcome) pairs, wanted ones first."""
    lam = clients.lambda_
    out = []
    with refused("trigger permission", name):
        current = _permission_statements(lam, name)
        for permission in wanted:
            have = current.get(permission.sid)
            if have is not None and permission.matches(have):
                out.append((permission.sid, "unchanged"))
                continue
            if have is not None:
                lam.remove_permission(FunctionName=name, StatementId=permission.sid)
            lam.add_permission(**permission.kwargs(name))
            out.append((permission.sid, "updated" if have is not None else "created"))
        keep = {p.sid for p in wanted}
        for sid in sorted(str(s) for s in current if s and str(s).startswith("mltp-") and s not in keep):
            lam.remove_permission(FunctionName=name, StatementId=sid)
            out.append((sid, "removed"))
    return out


def _notification_config(clients: Clients, bucket: str) -> Dict[str, Any]:
    config = clients.s3.get_bucket_notification_configuration(Bucket=bucket)
    config.pop("ResponseMetadata", None)
    return config


def _is_ours(ctx: RunContext, entry: dict) -> bool:
    """An entry this model's trigger installed: by exact Id, never by prefix."""
    entry_id = str(entry.get("Id", ""))
    parts = entry_id.split(NOTIFICATION_SEPARATOR)
    if len(parts) == 3 and parts[0] == "mltp" and parts[1] == ctx.config.name and parts[2]:
        return True
    # The old form is ambiguous (`fraud` + `detection-raw` = `fraud-detection` + `raw`):
    # only an exact Id of one of our inputs that also invokes our own function.
    inputs = [item.name for item in ctx.config.steps.preprocessing.inputs]
    function = str(entry.get("LambdaFunctionArn", "")).split(":function:")[-1].split(":")[0]
    return function == function_name(ctx) and any(entry_id == legacy_notification_id(ctx.config.name, name)
                                                  for name in inputs)


def _ours(ctx: RunContext, config: Dict[str, Any]) -> List[dict]:
    return [c for c in config.get("LambdaFunctionConfigurations", []) if _is_ours(ctx, c)]


def _normal(entry: dict) -> tuple:
    rules = tuple(sorted((r["Name"].lower(), r["Value"]) for r in entry.get("Filter", {}).get("Key", {}).get("FilterRules", [])))
    return entry.get("Id"), entry.get("LambdaFunctionArn"), tuple(sorted(entry.get("Events", []))), rules


def wanted_notifications(ctx: RunContext, function_arn: str, bucket: str) -> List[dict]:
    retrain = _retrain(ctx)
    out = []
    for spec in watched(ctx):
        if spec["bucket"] != bucket:
            continue
        rules = [{"Name": "prefix", "Value": spec["prefix"]}] if spec["prefix"] else []
        if retrain.marker:
            rules.append({"Name": "suffix", "Value": retrain.marker})
        entry = {"Id": notification_id(ctx, spec["input"]), "LambdaFunctionArn": function_arn, "Events": list(EVENTS)}
        if rules:
            entry["Filter"] = {"Key": {"FilterRules": rules}}
        out.append(entry)
    return out


# S3 has no conditional write for a bucket's notification configuration: two
# installs (two models watching one bucket) each read, merge and put it, and the
# later put drops what the earlier one added. After each put, the configuration
# is read back; when our entries or someone else's that we had read are gone, the
# read-modify-write is redone, a bounded number of times with growing pauses.
NOTIFICATION_TRIES = 5
NOTIFICATION_BACKOFF_SECONDS = 0.5


def _put_notifications(clients: Clients, bucket: str, config: Dict[str, Any], ours: List[dict], mine: List[dict]) -> None:
    """Everything the bucket had, except our old entries, plus our new ones."""
    mine_ids = {c.get("Id") for c in mine}
    others = [c for c in config.get("LambdaFunctionConfigurations", []) if c.get("Id") not in mine_ids]
    merged = {k: v for k, v in config.items() if k != "LambdaFunctionConfigurations"}
    lambdas = others + ours
    if lambdas:
        merged["LambdaFunctionConfigurations"] = lambdas
    clients.s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=merged)


def _entries(config: Dict[str, Any]) -> List[tuple]:
    """Every notification of a configuration, comparable across reads."""
    out = []
    for kind, value in config.items():
        if isinstance(value, list):
            out += [(kind, json.dumps(entry, sort_keys=True)) for entry in value]
        elif value:
            out.append((kind, json.dumps(value, sort_keys=True)))
    return out


def _lambda_entries(ctx: RunContext, config: Dict[str, Any], ours: bool) -> List[tuple]:
    return sorted(_normal(c) for c in config.get("LambdaFunctionConfigurations", []) if _is_ours(ctx, c) == ours)


def _merge_verified(ctx: RunContext, clients: Clients, bucket: str, wanted: List[dict]) -> Tuple[bool, bool]:
    """Make our entries on `bucket` exactly `wanted`, keeping everyone else's,
    and check the result by reading it back. Returns (had ours before, changed)."""
    for attempt in range(1, NOTIFICATION_TRIES + 1):
        config = _notification_config(clients, bucket)
        mine = _ours(ctx, config)
        if attempt == 1:
            had_mine = bool(mine)
        if sorted(map(_normal, mine)) == sorted(map(_normal, wanted)):
            return had_mine, attempt > 1
        others = _entries({k: v for k, v in config.items() if k != "LambdaFunctionConfigurations"})
        other_lambdas = _lambda_entries(ctx, config, ours=False)
        _put_notifications(clients, bucket, config, wanted, mine)
        _backoff(NOTIFICATION_BACKOFF_SECONDS * attempt)
        after = _notification_config(clients, bucket)
        kept_others = (set(others) <= set(_entries({k: v for k, v in after.items() if k != "LambdaFunctionConfigurations"}))
                       and set(other_lambdas) <= set(_lambda_entries(ctx, after, ours=False)))
        if kept_others and _lambda_entries(ctx, after, ours=True) == sorted(map(_normal, wanted)):
            return had_mine, True
    raise AwsRefused(f"the notification configuration of s3://{bucket} kept changing under us "
                         f"({NOTIFICATION_TRIES} tries): another install or tool is writing it at the same time; "
                         "run `mltp trigger install` again")


def ensure_notifications(ctx: RunContext, clients: Clients, function_arn: str, bucket: str) -> str:
    with refused("bucket notification", bucket):
        wanted = wanted_notifications(ctx, function_arn, bucket)
        had_mine, changed = _merge_verified(ctx, clients, bucket, wanted)
    if not changed:
        return "unchanged"
    return "updated" if had_mine else "created"


def ensure_schedule(ctx: RunContext, clients: Clients, function_arn: str) -> Tuple[str, str]:
    events = clients.events
    name = rule_name(ctx)
    with refused("trigger schedule", name):
        try:
            rule = events.describe_rule(Name=name)
            outcome = "unchanged"
            if rule.get("ScheduleExpression") != SWEEP_SCHEDULE or rule.get("State") != "ENABLED":
                outcome = "updated"
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            rule, outcome = None, "created"
        if outcome != "unchanged":
            rule = events.put_rule(Name=name, ScheduleExpression=SWEEP_SCHEDULE, State="ENABLED",
                                   Description=f"mltp: start {ctx.config.name}'s pending retrain once complete")
        rule_arn = rule.get("Arn") or rule.get("RuleArn")
        targets = events.list_targets_by_rule(Rule=name).get("Targets", [])
        if [t.get("Arn") for t in targets] != [function_arn]:
            if targets:
                events.remove_targets(Rule=name, Ids=[t["Id"] for t in targets])
            events.put_targets(Rule=name, Targets=[{"Id": "mltp-trigger", "Arn": function_arn}])
            outcome = "created" if outcome == "created" else "updated"
    return rule_arn, outcome


def policy_document(ctx: RunContext, clients: Clients) -> str:
    _default_branch_only(ctx, "policy")
    machine = runs.state_machine_arn(ctx, clients)
    return json.dumps(role_policy(ctx, machine, clients.sfn.meta.partition), indent=2, sort_keys=True)


def install(ctx: RunContext, clients: Clients, role_arn: Optional[str] = None) -> TriggerReport:
    """Set up or update the trigger; with `role_arn`, use that role (whose policy
    `mltp trigger policy` prints) instead of creating `mltp-trigger-<name>`."""
    _default_branch_only(ctx, "install")
    _retrain(ctx)
    report = TriggerReport("install", function_name(ctx))
    machine = runs.state_machine_arn(ctx, clients)
    with refused("trigger install", ctx.state_machine):
        if runs.describe_state_machine(clients, machine) is None:
            raise InvalidInput(f"state machine {ctx.state_machine} does not exist in {ctx.region}: "
                               "run `mltp deploy` (or a default-branch build) first")
    if role_arn:
        report.add(f"role {role_arn}", "given")
    else:
        role_arn, outcome = ensure_role(ctx, clients, machine)
        report.add(f"role {role_name(ctx)}", outcome)
    function_arn, outcome = ensure_function(ctx, clients, role_arn, environment(ctx, machine))
    report.add(f"function {function_name(ctx)}", outcome)
    account = clients.account_id() or machine.split(":")[4]
    partition = clients.sfn.meta.partition
    rule_arn, outcome = ensure_schedule(ctx, clients, function_arn)
    report.add(f"schedule {rule_name(ctx)} ({SWEEP_SCHEDULE})", outcome)
    buckets = sorted({spec["bucket"] for spec in watched(ctx)})
    permissions = [Permission(SCHEDULE_PERMISSION_ID, "events.amazonaws.com", rule_arn)]
    permissions += [Permission(permission_id(bucket), "s3.amazonaws.com", f"arn:{partition}:s3:::{bucket}", account)
                    for bucket in buckets]
    shown = {SCHEDULE_PERMISSION_ID: "permission for the schedule"}
    shown.update({permission_id(bucket): f"permission for s3://{bucket}" for bucket in buckets})
    for sid, outcome in ensure_permissions(clients, function_name(ctx), permissions):
        report.add(shown.get(sid, f"stale permission {sid}"), outcome)
    for bucket in buckets:
        report.add(f"notification on s3://{bucket}", ensure_notifications(ctx, clients, function_arn, bucket))
    from . import notifications  # retrain runs have no build watching them: `notify` tells someone

    for rule, outcome in notifications.apply(ctx.config, clients, ctx.region):
        report.add(f"notification rule {rule}", outcome)
    return report


# --------------------------------------------------------------------------- remove


def remove(ctx: RunContext, clients: Clients) -> TriggerReport:
    """Take down what install set up; other notifications on the buckets stay.
    The buckets come from the config, so remove before dropping an input from it."""
    _default_branch_only(ctx, "remove")
    report = TriggerReport("remove", function_name(ctx))
    buckets = sorted({spec["bucket"] for spec in watched(ctx)}) if ctx.config.retrain else []
    for bucket in buckets:
        with refused("bucket notification", bucket):
            had_mine, _ = _merge_verified(ctx, clients, bucket, [])
        report.add(f"notification on s3://{bucket}", "removed" if had_mine else "absent")
    events = clients.events
    with refused("trigger schedule", rule_name(ctx)):
        try:
            targets = events.list_targets_by_rule(Rule=rule_name(ctx)).get("Targets", [])
            if targets:
                events.remove_targets(Rule=rule_name(ctx), Ids=[t["Id"] for t in targets])
            events.delete_rule(Name=rule_name(ctx))
            report.add(f"schedule {rule_name(ctx)}", "removed")
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            report.add(f"schedule {rule_name(ctx)}", "absent")
    with refused("trigger function", function_name(ctx)):
        try:
            clients.lambda_.delete_function(FunctionName=function_name(ctx))
            report.add(f"function {function_name(ctx)}", "removed")
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            report.add(f"function {function_name(ctx)}", "absent")
    iam = clients.iam
    with refused("trigger role", role_name(ctx)):
        try:
            iam.delete_role_policy(RoleName=role_name(ctx), PolicyName="mltp-trigger")
            iam.delete_role(RoleName=role_name(ctx))
            report.add(f"role {role_name(ctx)}", "removed")
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            report.add(f"role {role_name(ctx)}", "absent")
    return report


# --------------------------------------------------------------------------- status


def _state_object(clients: Clients, ctx: RunContext, name: str) -> Optional[dict]:
    try:
        body = clients.s3.get_object(Bucket=ctx.config.aws.bucket, Key=state_prefix(ctx) + name)["Body"].read()
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in _MISSING:
            return None
        raise
    try:
        return json.loads(body)
    except ValueError:
        return None


def status(ctx: RunContext, clients: Clients) -> List[str]:
    """What is installed, what the function will run, and what is pending."""
    lines = []
    name = function_name(ctx)
    with refused("trigger status", name):
        try:
            conf = clients.lambda_.get_function(FunctionName=name)["Configuration"]
            current = conf.get("CodeSha256") == code_sha256(code_zip())
            lines.append(f"function: {conf['FunctionArn']} ({'current' if current else 'outdated: run mltp trigger install'})")
        except botocore.exceptions.ClientError as exc:
            if not _ignore_missing(exc):
                raise
            lines.append(f"function: not installed ({name})")
        if ctx.config.retrain:
            for bucket in sorted({spec["bucket"] for spec in watched(ctx)}):
                mine = _ours(ctx, _notification_config(clients, bucket))
                shown = ", ".join(_prefix_of(c) for c in mine) or "none"
                lines.append(f"notifications on s3://{bucket}: {shown}")
        else:
            lines.append("retrain: not set in the config")
        pointer = _state_object(clients, ctx, POINTER)
        if pointer:
            lines.append(f"code: last good run {pointer.get('run')} (commit {pointer['input'].get('GitCommit', '?')}, "
                         f"{pointer['input'].get('CodeS3Uri', '?')})")
            lines.append(_cache_line(pointer))
        else:
            lines.append("code: no successful default-branch run recorded yet; a retrain would start nothing")
        pending = _state_object(clients, ctx, "pending.json")
        consumed = _state_object(clients, ctx, "consumed.json") or {}
        if pending:
            lines.append(f"last new data: {pending.get('key')} at {pending.get('last_event')}")
        if consumed.get("run"):
            lines.append(f"last retrain: {consumed['run']} (data up to {consumed.get('until')})")
    return lines


def _cache_line(pointer: dict) -> str:
    """Whether a retrain can reuse steps (trigger_handler.retrain_cache)."""
    from . import cache_rules

    spec = pointer.get("cache")
    if not isinstance(spec, dict) or not isinstance(spec.get("steps"), dict):
        return ("step cache: not recorded for that run (an earlier mltp): retrains reuse nothing "
                "until a default-branch run passes")
    on = [cache_rules.STATES[r] for r in cache_rules.ROLES if (spec["steps"].get(r) or {}).get("cache")]
    if not on:
        return "step cache: no step has cache: true; retrains run every step"
    return f"step cache: retrains reuse unchanged steps of {', '.join(on)}"


def _prefix_of(entry: dict) -> str:
    for rule in entry.get("Filter", {}).get("Key", {}).get("FilterRules", []):
        if rule.get("Name", "").lower() == "prefix":
            return f"{entry.get('Id')} ({rule.get('Value')})"
    return str(entry.get("Id"))


# --------------------------------------------------------------------------- the pointer


def record_good_run(ctx: RunContext, clients: Clients, execution_input: Dict[str, Any]) -> Optional[str]:
    """After a passed default-branch run: remember its code for retraining.
    Returns the pointer's S3 URI, or None when this build does not register."""
    if not ctx.register:
        return None
    body = {
        "model": ctx.config.name,
        "state_machine": ctx.state_machine,
        "bucket": ctx.config.aws.bucket,
        "prefix": ctx.config.aws.prefix,
        "run": ctx.run_name,
        "input": execution_input,
    }
    cache = cache_spec(ctx.config, execution_input)
    if cache is not None:
        body["cache"] = cache
    key = pointer_key(ctx)
    with refused("record last good run", f"s3://{ctx.config.aws.bucket}/{key}"):
        clients.s3.put_object(Bucket=ctx.config.aws.bucket, Key=key, ContentType="application/json",
                              Body=json.dumps(body, sort_keys=True).encode("utf-8"))
    return f"s3://{ctx.config.aws.bucket}/{key}"


def cache_spec(config, execution_input: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """What the function needs to decide a retrain's step cache without the repo
    (trigger_handler.retrain_cache): per step the four parts of its key the repo
    and config fix (from the run's `Cache.parts`, computed by `mltp start` on
    the very code the retrain runs), whether its cache is on and its expiry;
    and preprocessing's inputs, whose objects the function lists for the fifth
    part (the later steps' is the earlier steps' keys, cache_rules.fed). None
    when the run's input has no parts (a run started by an older mltp)."""
    from . import cache_rules

    cache = execution_input.get("Cache")
    parts = cache.get("parts") if isinstance(cache, dict) else None
    if not isinstance(parts, dict):
        return None
    steps = {}
    for role in cache_rules.ROLES:
        have = parts.get(cache_rules.STATES[role])
        if not isinstance(have, dict) or not all(isinstance(have.get(p), str) for p in cache_rules.STATIC_PARTS):
            return None
        step = getattr(config.steps, role)
        steps[role] = {"parts": {p: have[p] for p in cache_rules.STATIC_PARTS}, "cache": bool(step.cache),
                       "expire_days": int(step.cache_expire_days)}
    return {"version": cache_rules.KEY_VERSION, "steps": steps,
            "inputs": [{"name": item.name, "source": item.source} for item in config.steps.preprocessing.inputs]}
