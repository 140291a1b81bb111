"""Telling someone about runs nobody watches (docs/contract.md, 2.12).

A retrain started by new data runs with no Jenkins build following it, and a
version waiting for approval waits silently. With `notify` in config.yaml,
`deploy` (on the default branch) and `trigger install` keep EventBridge rules
of this model only, each sending a short message to the configured SNS topic:

- failed:     Step Functions "Execution Status Change" of the model's state
              machines (`<name>` and `<name>--<branch>`) with status FAILED
              (rule `...-notify-failed`: a missed gate is a FAILED execution
              whose error is MetricGateFailed, so its message carries the gate
              line), TIMED_OUT or ABORTED (rule `...-notify-stopped`);
- registered: SageMaker "Model Package State Change" of the model's group with
              ModelApprovalStatus PendingManualApproval (a new version);
- approved / rejected: the same event filtered on the exact status, so a rule
              never fires for every change of a package (AWS's own project
              templates once deployed unapproved models that way).

The rules are matched by their exact names, `mltp-<name>-notify-<event>`, never
by prefix, so one model's rules never touch another's. EventBridge fills each
message from the event with an input transformer; a local run has no
EventBridge, so `local_notifications` builds the same events from the run's
report in the documented shape, matches them against the same patterns and
fills the same templates (`render`), and writes what would have been sent.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import botocore.exceptions

from .aws import Clients, error_code, refused

EVENTS = ("failed", "registered", "approved", "rejected")
APPROVAL_STATUS = {"registered": "PendingManualApproval", "approved": "Approved", "rejected": "Rejected"}
FAILED_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
EXECUTION_EVENT = "Step Functions Execution Status Change"
PACKAGE_EVENT = "SageMaker Model Package State Change"
TARGET_ID = "mltp-sns"
NOTIFICATIONS_FILE = "notifications.json"


# `failed` is two rules: a FAILED execution has an error and a cause to tell,
# one that timed out or was stopped has neither.
RULES = ("failed", "stopped", "registered", "approved", "rejected")


def rule_name(model: str, rule: str) -> str:
    """At most 64 characters: `mltp-` + a name of at most 40 + `-notify-registered`."""
    return f"mltp-{model}-notify-{rule}"


def rule_names(model: str) -> List[str]:
    return [rule_name(model, rule) for rule in RULES]


@dataclass(frozen=True)
class Rule:
    event: str  # failed | registered | approved | rejected
    name: str
    pattern: Dict[str, Any]
    input_paths: Dict[str, str]
    template: str  # a JSON string: EventBridge sends the text it holds
    description: str

    def target(self, topic_arn: str) -> Dict[str, Any]:
        return {"Id": TARGET_ID, "Arn": topic_arn,
                "InputTransformer": {"InputPathsMap": dict(self.input_paths), "InputTemplate": self.template}}


def _template(text: str) -> str:
    """A template whose output is one string (an SNS message): the text as a JSON
    string, with EventBridge's <placeholders> left in it."""
    return json.dumps(text)


def rules(model: str, group: str, region: str, account: str, partition: str = "aws") -> List[Rule]:
    """The four rules a model can have; `config.notify.events` picks among them."""
    machine = f"arn:{partition}:states:{region}:{account}:stateMachine:{model}"
    console = f"https://<region>.console.aws.amazon.com"
    link = f"Execution: {console}/states/home?region=<region>#/v2/executions/details/<execution>"
    paths = {"run": "$.detail.name", "status": "$.detail.status", "machine": "$.detail.stateMachineArn",
             "execution": "$.detail.executionArn", "region": "$.region"}
    # the default branch's state machine, and each branch's `<name>--<slug>`
    machines = [machine, {"prefix": machine + "--"}]
    out = [Rule(  # a FAILED execution carries its error and cause (for a missed gate: the gate line)
        event="failed",
        name=rule_name(model, "failed"),
        pattern={"source": ["aws.states"], "detail-type": [EXECUTION_EVENT],
                 "detail": {"status": ["FAILED"], "stateMachineArn": machines}},
        input_paths={**paths, "error": "$.detail.error", "cause": "$.detail.cause"},
        template=_template(f"mltp {model}: run <run> FAILED: <error>: <cause>. State machine <machine>. {link}"),
        description=f"mltp: runs of {model} that failed",
    ), Rule(  # timed out or stopped: no error or cause in the event
        event="failed",
        name=rule_name(model, "stopped"),
        pattern={"source": ["aws.states"], "detail-type": [EXECUTION_EVENT],
                 "detail": {"status": ["TIMED_OUT", "ABORTED"], "stateMachineArn": machines}},
        input_paths=paths,
        template=_template(f"mltp {model}: run <run> ended <status>. State machine <machine>. {link}"),
        description=f"mltp: runs of {model} that timed out or were stopped",
    )]
    for event, status in APPROVAL_STATUS.items():
        what = {"registered": "registered, waiting for approval", "approved": "approved",
                "rejected": "rejected"}[event]
        out.append(Rule(
            event=event,
            name=rule_name(model, event),
            pattern={"source": ["aws.sagemaker"], "detail-type": [PACKAGE_EVENT],
                     "detail": {"ModelPackageGroupName": [group], "ModelApprovalStatus": [status]}},
            input_paths={"group": "$.detail.ModelPackageGroupName", "version": "$.detail.ModelPackageVersion",
                         "package": "$.detail.ModelPackageArn", "region": "$.region"},
            template=_template(f"mltp {model}: version <version> of <group> {what}. "
                               f"Model package <package>. Registry: {console}/sagemaker/home?region=<region>"
                               f"#/model-registry/model-package-groups/<group>"),
            description=f"mltp: versions of {group} {what}",
        ))
    return out


def wanted_rules(config, region: str, account: str, partition: str = "aws") -> List[Rule]:
    notify = getattr(config, "notify", None)
    if notify is None:
        return []
    every = rules(config.name, config.registry.model_package_group, region, account, partition)
    return [rule for rule in every if rule.event in notify.events]


# --------------------------------------------------------------------------- on AWS


def apply(config, clients: Clients, region: str) -> List[Tuple[str, str]]:
    """Make the model's rules what config.yaml says: (rule, created | updated |
    unchanged | removed) for each rule that is or was there. Idempotent; touches
    only the exact names of this model's rules. One ListRules call finds what is
    there; a config without `notify` whose identity may not list rules has none
    to remove (it could not have created them either)."""
    notify = getattr(config, "notify", None)
    events = clients.events
    try:
        existing = _existing(events, config.name)
    except botocore.exceptions.ClientError as exc:
        if notify is None and error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            return []
        with refused("notifications", config.name):
            raise
    if notify is None:
        with refused("notifications", config.name):
            for name in existing:
                _remove(events, name)
        return [(name, "removed") for name in existing]
    account = clients.account_id()
    wanted = {rule.name: rule for rule in wanted_rules(config, region, account, clients.sfn.meta.partition)}
    done: List[Tuple[str, str]] = []
    with refused("notifications", config.name):
        for name in rule_names(config.name):
            current = existing.get(name)
            rule = wanted.get(name)
            if rule is None:
                if current is not None:
                    _remove(events, name)
                    done.append((name, "removed"))
                continue
            targets = events.list_targets_by_rule(Rule=name).get("Targets", []) if current is not None else []
            target = rule.target(notify.topic_arn)
            same_rule = (current is not None and _pattern(current.get("EventPattern")) == rule.pattern
                         and current.get("State") == "ENABLED" and current.get("Description") == rule.description)
            same_target = [_target_key(t) for t in targets] == [_target_key(target)]
            if same_rule and same_target:
                done.append((name, "unchanged"))
                continue
            events.put_rule(Name=name, EventPattern=json.dumps(rule.pattern, sort_keys=True), State="ENABLED",
                            Description=rule.description)
            stale = [t["Id"] for t in targets if t["Id"] != TARGET_ID]
            if stale:  # only our rule's own targets: the rule is ours by its exact name
                events.remove_targets(Rule=name, Ids=stale)
            if not same_target:
                events.put_targets(Rule=name, Targets=[target])
            done.append((name, "created" if current is None else "updated"))
    return done


def remove(config, clients: Clients) -> List[Tuple[str, str]]:
    """Take the model's rules down (exact names)."""
    with refused("notifications", config.name):
        existing = _existing(clients.events, config.name)
        for name in existing:
            _remove(clients.events, name)
    return [(name, "removed") for name in existing]


def _existing(events, model: str) -> Dict[str, dict]:
    """This model's rules that exist, by exact name (the prefix only narrows the
    listing; names of other models it may list are never taken)."""
    ours = set(rule_names(model))
    found: Dict[str, dict] = {}
    token = None
    while True:
        kwargs = {"NamePrefix": f"mltp-{model}-notify-", "Limit": 100}
        if token:
            kwargs["NextToken"] = token
        page = events.list_rules(**kwargs)
        found.update({r["Name"]: r for r in page.get("Rules", []) if r.get("Name") in ours})
        token = page.get("NextToken")
        if not token:
            return found


def _remove(events, name: str) -> None:
    ids = [t["Id"] for t in events.list_targets_by_rule(Rule=name).get("Targets", [])]
    if ids:
        events.remove_targets(Rule=name, Ids=ids)
    events.delete_rule(Name=name)


def _pattern(text: Optional[str]) -> Any:
    try:
        return json.loads(text or "null")
    except ValueError:
        return None


def _target_key(target: dict) -> tuple:
    transformer = target.get("InputTransformer") or {}
    return (target.get("Id"), target.get("Arn"), json.dumps(transformer.get("InputPathsMap") or {}, sort_keys=True),
            transformer.get("InputTemplate"))


# --------------------------------------------------------------------------- the topic's policy


def topic_problem(policy_text: Optional[str], topic_arn: str) -> Optional[str]:
    """None when the topic's access policy lets EventBridge publish to it, else
    what is wrong (preflight prints `topic_statement` with it)."""
    try:
        document = json.loads(policy_text or "{}")
    except ValueError:
        return "its access policy is not JSON"
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    for statement in statements:
        if statement.get("Effect") != "Allow" or statement.get("Condition"):
            continue
        principal = statement.get("Principal") or {}
        services = principal.get("Service") if isinstance(principal, dict) else None
        if "events.amazonaws.com" not in _listed(services) and principal != "*":
            continue
        actions = [a.lower() for a in _listed(statement.get("Action"))]
        if not any(a in ("sns:publish", "sns:*", "*") for a in actions):
            continue
        if any(r in ("*", topic_arn) for r in _listed(statement.get("Resource"))):
            return None
    return "its access policy does not let EventBridge (events.amazonaws.com) publish to it"


def topic_statement(topic_arn: str) -> Dict[str, Any]:
    return {"Sid": "AllowEventBridgePublish", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
            "Action": "sns:Publish", "Resource": topic_arn}


def _listed(value: Any) -> List[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


# --------------------------------------------------------------------------- patterns and templates, locally


def matches(pattern: Dict[str, Any], event: Dict[str, Any]) -> bool:
    """EventBridge's matching for what these rules use: every key of the pattern
    present in the event, a list of allowed values (exact, or {"prefix": ...})."""
    for key, allowed in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(allowed, dict):
            if not isinstance(value, dict) or not matches(allowed, value):
                return False
            continue
        if not any(_value_matches(option, value) for option in allowed):
            return False
    return True


def _value_matches(option: Any, value: Any) -> bool:
    if isinstance(option, dict):
        prefix = option.get("prefix")
        return isinstance(prefix, str) and isinstance(value, str) and value.startswith(prefix)
    return option == value


_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


def render(rule: Rule, event: Dict[str, Any]) -> str:
    """The message EventBridge makes of `event` with the rule's input transformer:
    each <name> replaced by the value at its path (a missing one by nothing)."""
    values = {}
    for name, path in rule.input_paths.items():
        node: Any = event
        for part in path[2:].split("."):  # "$.detail.name"
            node = node.get(part) if isinstance(node, dict) else None
        values[name] = "" if node is None else (node if isinstance(node, str) else json.dumps(node))
    text = json.loads(rule.template)
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text)


def execution_event(region: str, account: str, machine_arn: str, run: str, status: str,
                    error: Optional[str], cause: Optional[str], started_ms: int, stopped_ms: int) -> Dict[str, Any]:
    """A Step Functions "Execution Status Change" event, in its documented shape."""
    execution = machine_arn.replace(":stateMachine:", ":execution:") + f":{run}"
    detail = {"executionArn": execution, "stateMachineArn": machine_arn, "name": run, "status": status,
              "startDate": started_ms, "stopDate": stopped_ms, "input": None, "output": None}
    if error is not None:
        detail["error"] = error
    if cause is not None:
        detail["cause"] = cause
    return {"version": "0", "id": f"mltp-local-{run}-{status.lower()}", "detail-type": EXECUTION_EVENT,
            "source": "aws.states", "account": account, "time": _iso_ms(stopped_ms), "region": region,
            "resources": [execution], "detail": detail}


def package_event(region: str, account: str, group: str, version: int, package_arn: str,
                  status: str, when_ms: int) -> Dict[str, Any]:
    """A SageMaker "Model Package State Change" event, in its documented shape."""
    when = _iso_ms(when_ms)
    return {"version": "0", "id": f"mltp-local-{group}-{version}-{status}", "detail-type": PACKAGE_EVENT,
            "source": "aws.sagemaker", "account": account, "time": when, "region": region,
            "resources": [package_arn],
            "detail": {"ModelPackageGroupName": group, "ModelPackageVersion": version,
                       "ModelPackageArn": package_arn, "CreationTime": when, "ModelPackageStatus": "Completed",
                       "ModelApprovalStatus": status, "LastModifiedTime": when}}


def _iso_ms(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# The execution status a local run's outcome corresponds to, and the error its
# Fail state (or the failing job) reports: what EventBridge would have seen.
_EXECUTION_STATUS = {"gate_failed": "FAILED", "failed": "FAILED", "timed_out": "TIMED_OUT", "stopped": "ABORTED"}


def events_of_run(report: Dict[str, Any], region: str, account: str) -> List[Dict[str, Any]]:
    """The events a run would have sent on AWS, from its report.json: its
    execution's end when it did not pass, and its registered version."""
    out = []
    machine = (report.get("execution_arn") or "").replace(":execution:", ":stateMachine:").rsplit(":", 1)[0]
    if not machine:
        machine = f"arn:aws:states:{region}:{account}:stateMachine:{report.get('state_machine')}"
    started = _ms(report.get("started"))
    stopped = _ms(report.get("ended")) or started
    status = _EXECUTION_STATUS.get(report.get("status") or "")
    if status:
        error = "MetricGateFailed" if report.get("status") == "gate_failed" else (
            (report.get("failure") or {}).get("error") or ("States.Timeout" if status == "TIMED_OUT" else None))
        cause = report.get("message") if status != "ABORTED" else None
        out.append(execution_event(region, account, machine, report.get("run") or "", status, error, cause,
                                   started, stopped))
    package = report.get("model_package") or {}
    if package.get("arn"):
        version = int(str(package["arn"]).rsplit("/", 1)[-1])
        group = str(package["arn"]).split("model-package/", 1)[-1].rsplit("/", 1)[0]
        out.append(package_event(region, account, group, version, package["arn"],
                                 package.get("approval_status") or "PendingManualApproval", stopped))
    return out


def _ms(text: Optional[str]) -> int:
    from datetime import datetime

    if not text:
        return 0
    try:
        return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return 0


def local_notifications(config, report_dir: Path, region: str, account: str) -> List[Dict[str, str]]:
    """What a local run would have sent: written to the report folder as
    notifications.json (always, when `notify` is set: an empty list says that
    nothing would have been sent), returned for the log."""
    if getattr(config, "notify", None) is None:
        return []
    report_path = Path(report_dir) / "report.json"
    if not report_path.is_file():
        return []
    report = json.loads(report_path.read_text(encoding="utf-8"))
    sent = []
    wanted = wanted_rules(config, region, account)
    for event in events_of_run(report, region, account):
        for rule in wanted:
            if matches(rule.pattern, event):
                sent.append({"event": rule.event, "rule": rule.name, "topic_arn": config.notify.topic_arn,
                             "message": render(rule, event)})
    target = Path(report_dir) / NOTIFICATIONS_FILE
    tmp = target.with_name(f".{NOTIFICATIONS_FILE}.tmp")
    tmp.write_text(json.dumps(sent, indent=2) + "\n", encoding="utf-8")
    tmp.replace(target)
    return sent


def lines(sent: Sequence[Dict[str, str]]) -> List[str]:
    return [f"notify ({n['event']}): would send to {n['topic_arn']}: {n['message']}" for n in sent]


def describe(done: Iterable[Tuple[str, str]]) -> List[str]:
    return [f"notify: {outcome} rule {name}" for name, outcome in done]
