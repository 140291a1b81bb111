"""Test helpers for IAM policies: IAM's own service authorization data (as the
`parliament` package ships it), an evaluator of Allow statements, and the
resource each recorded AWS call acts on.

The evaluator knows what mltp's policies use: actions and resources with `*`
and `?` wildcards, and the condition operators StringEquals, StringLike and
ForAnyValue:StringEquals. A statement with any other operator never matches,
so a policy that starts using one fails the coverage tests until this learns it.
"""

import fnmatch
import re
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Optional, Tuple

Context = Dict[str, Any]


# --------------------------------------------------------------------------- IAM's data


@lru_cache(maxsize=None)
def _services() -> Dict[str, dict]:
    from parliament import iam_definition

    return {service["prefix"]: service for service in iam_definition}


def iam_action(action: str) -> Optional[dict]:
    """IAM's entry for an action (case-insensitive, as IAM matches them), or None."""
    prefix, _, name = action.partition(":")
    service = _services().get(prefix.lower())
    if not service:
        return None
    for privilege in service["privileges"]:
        if privilege["privilege"].lower() == name.lower():
            return privilege
    return None


def resource_types(action: str) -> List[Tuple[str, bool]]:
    """(resource type, required) pairs IAM lists for an action ('' = any resource)."""
    entry = iam_action(action)
    assert entry, f"{action} is not an IAM action"
    return [(r["resource_type"].rstrip("*"), r["resource_type"].endswith("*")) for r in entry["resource_types"]]


def needs_no_resource(action: str) -> bool:
    """True when IAM gives the action no resource type: only "*" can authorize it."""
    return all(name == "" for name, _ in resource_types(action))


def arn_formats(action: str) -> List[str]:
    """The ARN formats of the action's resource types, as regular expressions."""
    prefix = action.split(":")[0].lower()
    service = _services()[prefix]
    names = {name for name, _ in resource_types(action) if name}
    out = []
    for resource in service["resources"]:
        if resource["resource"] in names:
            pattern = re.escape(resource["arn"])
            pattern = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", ".+", pattern)
            out.append(pattern)
    return out


# --------------------------------------------------------------------------- evaluating Allow statements


def _listed(value: Any) -> List[str]:
    return value if isinstance(value, list) else [value]


def _glob(pattern: str, text: str, case: bool = True) -> bool:
    if not case:
        pattern, text = pattern.lower(), text.lower()
    return fnmatch.fnmatchcase(text, pattern.replace("[", "[[]"))


def _condition_holds(condition: Dict[str, Dict[str, Any]], context: Context) -> bool:
    for operator, tests in condition.items():
        for key, wanted in tests.items():
            wanted = _listed(wanted)
            present = context.get(key)
            if present is None:
                return False
            values = _listed(present)
            if operator == "StringEquals":
                ok = any(v == w for v in values for w in wanted)
            elif operator == "StringLike":
                ok = any(_glob(w, v) for v in values for w in wanted)
            elif operator == "ForAnyValue:StringEquals":
                ok = any(v in wanted for v in values)
            else:
                return False
            if not ok:
                return False
    return True


def allows(document: Dict[str, Any], action: str, resource: str, context: Optional[Context] = None) -> bool:
    """Whether some Allow statement of the policy grants `action` on `resource`."""
    for statement in document["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        if not any(_glob(a, action, case=False) for a in _listed(statement["Action"])):
            continue
        if not any(_glob(r, resource) for r in _listed(statement["Resource"])):
            continue
        if _condition_holds(statement.get("Condition") or {}, context or {}):
            return True
    return False


def missing(document: Dict[str, Any], needs: Iterable[Tuple[str, str, Context]]) -> List[str]:
    """'action on resource' for every need the policy does not grant."""
    out = []
    for action, resource, context in needs:
        if not allows(document, action, resource, context):
            out.append(f"{action} on {resource}" + (f" with {context}" if context else ""))
    return sorted(set(out))


# --------------------------------------------------------------------------- what a recorded call acts on

PASSED_TO = {"stepfunctions": "states.amazonaws.com", "lambda": "lambda.amazonaws.com"}


def call_needs(service: str, operation: str, params: Dict[str, Any], region: str, account: str,
               partition: str = "aws") -> List[Tuple[str, str, Context]]:
    """(action, resource, condition context) for each permission one call needs.
    Fails on a call it cannot place, so a new kind of call gets a deliberate update."""
    from mltp import iam_actions

    def arn(svc: str, rest: str) -> str:
        return f"arn:{partition}:{svc}:{region}:{account}:{rest}"

    def sagemaker(kind: str, name: str) -> str:
        return name if name.startswith("arn:") else arn("sagemaker", f"{kind}/{name.lower()}")

    p = params
    own: Optional[Tuple[str, Context]] = None
    if service == "s3":
        if operation == "DeleteObjects":  # authorized object by object, as s3:DeleteObject
            return [("s3:DeleteObject", f"arn:{partition}:s3:::{p['Bucket']}/{o['Key']}", {})
                    for o in p["Delete"]["Objects"]]
        if "CopySource" in p:  # CopyObject, UploadPartCopy: the copy's action, and reading the source
            source = p["CopySource"]
            source = f"{source['Bucket']}/{source['Key']}" if isinstance(source, dict) else source.lstrip("/")
            return [(action, f"arn:{partition}:s3:::{p['Bucket']}/{p['Key']}", {})
                    for action in iam_actions.actions_for(service, operation, p)] + \
                [("s3:GetObject", f"arn:{partition}:s3:::{source.split('?')[0]}", {})]
        if "Key" in p:
            own = (f"arn:{partition}:s3:::{p['Bucket']}/{p['Key']}", {})
        elif operation in ("ListObjectsV2", "ListObjects"):
            own = (f"arn:{partition}:s3:::{p['Bucket']}", {"s3:prefix": p.get("Prefix", "")})
        else:
            own = (f"arn:{partition}:s3:::{p['Bucket']}", {})
    elif service == "stepfunctions":
        target = p.get("stateMachineArn") or p.get("executionArn") or p.get("resourceArn")
        if operation == "ListStateMachines":
            target = "*"
        if operation == "CreateStateMachine":
            target = arn("states", f"stateMachine:{p['name']}")
        own = (target, {}) if target else None
    elif service == "logs":
        if operation in ("DescribeLogGroups", "DescribeQueryDefinitions", "PutQueryDefinition",
                         "DeleteQueryDefinition", "DescribeExportTasks"):
            own = ("*", {})  # IAM lists no resource type for these
        elif "logStreamName" in p:
            own = (arn("logs", f"log-group:{p['logGroupName']}:log-stream:{p['logStreamName']}"), {})
        elif "logGroupName" in p:
            own = (arn("logs", f"log-group:{p['logGroupName']}"), {})
    elif service == "sagemaker":
        if operation == "ListModelPackages":
            own = ("*", {})
        elif "TrainingJobName" in p:
            own = (sagemaker("training-job", p["TrainingJobName"]), {})
        elif "ProcessingJobName" in p:
            own = (sagemaker("processing-job", p["ProcessingJobName"]), {})
        elif "ModelPackageName" in p:
            own = (sagemaker("model-package", p["ModelPackageName"]), {})
        elif "ModelPackageGroupName" in p:
            own = (sagemaker("model-package-group", p["ModelPackageGroupName"]), {})
        elif "ResourceArn" in p:  # ListTags, AddTags
            own = (p["ResourceArn"], {})
    elif service == "iam":
        if operation == "GetRole":
            own = (f"arn:{partition}:iam::{account}:role/{p['RoleName']}", {})
        elif operation == "SimulatePrincipalPolicy":
            own = (p["PolicySourceArn"], {})
    elif service == "kms":
        key = p["KeyId"]
        own = (key if key.startswith("arn:") else arn("kms", f"key/{key}"), {})
    elif service == "service-quotas":
        own = ("*", {})
    elif service == "pricing":  # the run's cost (pricing.py): IAM lists no resource type
        own = ("*", {})
    elif service == "events":  # the model's notification rules (notifications.py)
        own = ("*", {}) if operation == "ListRules" else (arn("events", f"rule/{p['Rule' if 'Rule' in p else 'Name']}"), {})
    elif service == "sns" and "TopicArn" in p:
        own = (p["TopicArn"], {})
    elif service == "sts" and operation == "GetCallerIdentity":
        return []
    assert own is not None, f"iam_check.call_needs cannot place {service}.{operation}({sorted(p)})"
    resource, context = own
    needs = []
    for action in iam_actions.actions_for(service, operation, p):
        if action == "iam:PassRole":
            role = p.get("roleArn") or p.get("Role")
            needs.append((action, role, {"iam:PassedToService": PASSED_TO[service]}))
        elif action in iam_actions.LOG_DELIVERY_ACTIONS and action != f"logs:{operation}":
            needs.append((action, "*", {}))
        else:
            needs.append((action, resource, context))
    return needs
