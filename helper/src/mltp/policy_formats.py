"""`mltp iam-policy` output: a policy as IAM JSON, a CloudFormation template or Terraform.

IAM's JSON has no comments, so the notes on Resource "*" go to stderr there;
CloudFormation (YAML) and Terraform (HCL) carry them as comments above the
statement. Scalars are written as JSON strings, which both YAML and HCL read as
plain strings.
"""

import json
import re
from typing import Any, Dict, List, Tuple

from .policies import Policy

FORMATS = ("json", "cloudformation", "terraform")


def _logical_id(policy: Policy) -> str:
    words = re.split(r"[^A-Za-z0-9]+", f"{policy.model} {policy.role} role")
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def _role_name(policy: Policy) -> str:
    """The role's name from its ARN in config.yaml, else mltp-<model>-<role>."""
    if policy.role_arn:
        return policy.role_arn.rsplit("/", 1)[-1]
    return f"mltp-{policy.model}-{policy.role}"


def _role_path(policy: Policy) -> str:
    if policy.role_arn:
        path = policy.role_arn.split(":role", 1)[1]
        return path.rsplit("/", 1)[0] + "/"
    return "/"


def render(policy: Policy, trust: Dict[str, Any], fmt: str, trust_only: bool = False) -> Tuple[str, List[str]]:
    """(text for stdout, lines for stderr)."""
    if fmt == "json":
        if trust_only:
            return json.dumps(trust, indent=2) + "\n", []
        notes = [f"# {s.sid}: {s.note}" for s in policy.statements if s.note]
        return json.dumps(policy.document(), indent=2) + "\n", notes
    if fmt == "cloudformation":
        return _cloudformation(policy, trust, trust_only), []
    if fmt == "terraform":
        return _terraform(policy, trust, trust_only), []
    raise ValueError(fmt)


# --------------------------------------------------------------------------- YAML (CloudFormation)


def _yaml(value: Any, indent: int) -> List[str]:
    """Block YAML of JSON-like data; strings JSON-quoted."""
    pad = " " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{json.dumps(key)}:")
                lines.extend(_yaml(item, indent + 2))
            else:
                lines.append(f"{pad}{json.dumps(key)}: {json.dumps(item)}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            inner = _yaml(item, indent + 2) if isinstance(item, (dict, list)) else [f"{pad}  {json.dumps(item)}"]
            lines.append(f"{pad}- {inner[0].strip()}")
            lines.extend(inner[1:])
        return lines
    return [pad + json.dumps(value)]


def _cloudformation(policy: Policy, trust: Dict[str, Any], trust_only: bool) -> str:
    lines = [
        f"# mltp iam-policy --role {policy.role}: the {policy.role} role of model {policy.model}",
        'AWSTemplateFormatVersion: "2010-09-09"',
        "Resources:",
        f"  {_logical_id(policy)}:",
        '    Type: "AWS::IAM::Role"',
        "    Properties:",
        f"      RoleName: {json.dumps(_role_name(policy))}",
        f"      Path: {json.dumps(_role_path(policy))}",
        "      AssumeRolePolicyDocument:",
        *_yaml(trust, 8),
    ]
    if not trust_only:
        lines += [
            "      Policies:",
            f"        - PolicyName: {json.dumps(f'mltp-{policy.model}-{policy.role}')}",
            "          PolicyDocument:",
            '            Version: "2012-10-17"',
            "            Statement:",
        ]
        for statement in policy.statements:
            if statement.note:
                lines.append(f"              # {statement.note}")
            body = _yaml(statement.document(), 16)
            lines.append(f"              - {body[0].strip()}")
            lines.extend(body[1:])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- HCL (Terraform)


def _hcl(value: Any, indent: int) -> str:
    pad = " " * indent
    if isinstance(value, dict):
        inner = [f"{pad}  {json.dumps(k)} = {_hcl(v, indent + 2)}" for k, v in value.items()]
        return "{\n" + "\n".join(inner) + f"\n{pad}}}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return "[" + ", ".join(json.dumps(v) for v in value) + "]"
        return "[\n" + ",\n".join(f"{pad}  {_hcl(v, indent + 2)}" for v in value) + f",\n{pad}]"
    return json.dumps(value)


def _terraform(policy: Policy, trust: Dict[str, Any], trust_only: bool) -> str:
    name = re.sub(r"[^a-z0-9_]", "_", f"{policy.model}_{policy.role}".lower())
    lines = [
        f"# mltp iam-policy --role {policy.role}: the {policy.role} role of model {policy.model}",
        f'resource "aws_iam_role" "{name}" {{',
        f"  name = {json.dumps(_role_name(policy))}",
        f"  path = {json.dumps(_role_path(policy))}",
        f"  assume_role_policy = jsonencode({_hcl(trust, 2)})",
        "}",
    ]
    if not trust_only:
        statements = []
        for statement in policy.statements:
            comment = f"      # {statement.note}\n" if statement.note else ""
            statements.append(comment + "      " + _hcl(statement.document(), 6))
        lines += [
            "",
            f'resource "aws_iam_role_policy" "{name}" {{',
            f"  name = {json.dumps(f'mltp-{policy.model}-{policy.role}')}",
            f"  role = aws_iam_role.{name}.id",
            "  policy = jsonencode({",
            '    "Version" = "2012-10-17"',
            '    "Statement" = [',
            ",\n".join(statements) + ",",
            "    ]",
            "  })",
            "}",
        ]
    return "\n".join(lines) + "\n"
