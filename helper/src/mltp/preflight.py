"""`mltp preflight`: read-only checks of an AWS account before a run spends money.

A first run in a new account otherwise finds each missing permission as an
AccessDenied in a failed step, one per run, and a zero instance quota only when
SageMaker creates the job. Each check here makes read-only calls and ends as one
line: ok, failed (naming what to fix and the command that prints the missing
policy) or skipped (the endpoint does not implement the call, or this identity
may not make it; preflight never fails for what it could not check).

The answers are judged by pure functions (`trust_problem`, `quota_problems`,
`simulation_problems`) so they can be tested over responses in the documented
shape where the emulator lacks the API (Service Quotas, IAM's policy simulator).
"""

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import botocore.exceptions
import botocore.parsers

from . import policies
from .aws import Clients, error_code
from .config import Config

OK, FAILED, SKIPPED, WARNING = "ok", "failed", "skipped", "warning"

# An emulator without an API may answer with an HTML error page, which botocore
# cannot parse (botocore.parsers.ResponseParserError is no BotoCoreError).
_AWS_ERRORS = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, botocore.parsers.ResponseParserError)

# Answers that mean "this endpoint cannot do it" (an emulator without the API)
# or "this identity may not ask": the check is skipped, not failed.
_NOT_ALLOWED = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")
_UNSUPPORTED = ("NotImplemented", "InternalFailure", "InternalError", "500", "501")


@dataclass(frozen=True)
class Check:
    status: str  # ok | failed | skipped | warning (a setting that leaves the default branch reachable)
    text: str

    def line(self) -> str:
        return f"{self.status}: {self.text}"


def _policy_hint(role: str) -> str:
    return f"`mltp iam-policy --role {role}` prints the policy it needs"


def _skipped_because(exc: Exception, call: str) -> Optional[str]:
    """Why a check cannot be made, or None when the error is a real answer."""
    if isinstance(exc, botocore.parsers.ResponseParserError):
        return f"the endpoint does not implement {call}"
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectTimeoutError)):
        return f"{call} could not be reached"
    code = error_code(exc)
    if code in _NOT_ALLOWED:
        return f"this identity may not call {call}"
    status = getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    if code in _UNSUPPORTED or (status and status >= 500):
        return f"the endpoint does not implement {call}"
    return None


# --------------------------------------------------------------------------- judging answers


def role_name(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _statements(document: Any) -> List[dict]:
    if isinstance(document, str):  # IAM returns it URL-encoded in its XML; boto3 usually decodes it
        document = json.loads(urllib.parse.unquote(document))
    statements = document.get("Statement", [])
    return statements if isinstance(statements, list) else [statements]


def _listed(value: Any) -> List[Any]:
    return value if isinstance(value, list) else [value]


def trust_problem(document: Any, service: str) -> Optional[str]:
    """None when the trust policy lets `service` assume the role."""
    for statement in _statements(document):
        actions = [a.lower() for a in _listed(statement.get("Action", []))]
        services = _listed((statement.get("Principal") or {}).get("Service", [])) if isinstance(statement.get("Principal"), dict) else []
        if statement.get("Effect") == "Allow" and ("sts:assumerole" in actions or "sts:*" in actions) and service in services:
            return None
    return f"does not trust {service}"


def quota_name(instance_type: str, job: str) -> str:
    """Service Quotas' name of the per-instance-type SageMaker quota, as in the
    ResourceLimitExceeded message ('ml.m5.xlarge for training job usage')."""
    return f"{instance_type} for {job} job usage"


def needed_instances(config: Config) -> Dict[str, Tuple[int, List[str]]]:
    """Quota name -> (instances one run needs at once, config keys asking for it)."""
    out: Dict[str, Tuple[int, List[str]]] = {}
    for step in config.steps.all():
        name = quota_name(step.instance_type, "training" if step.role == "training" else "processing")
        count, keys = out.get(name, (0, []))
        # Steps run one after another: the largest single step is what must fit.
        out[name] = (max(count, step.instance_count), keys + [f"steps.{step.role}.instance_type"])
    return out


def quota_problems(config: Config, quotas: Iterable[dict], region: Optional[str] = None,
                   defaults_unknown: Optional[str] = None) -> List[Check]:
    """Checks from Service Quotas' Quota objects (ListServiceQuotas / ListAWSDefaultServiceQuotas).
    `defaults_unknown` says why the defaults could not be read: a quota neither list
    names is then skipped, not failed."""
    region = region or config.aws.region
    values = {q.get("QuotaName"): q.get("Value") for q in quotas}
    checks = []
    for name, (count, keys) in sorted(needed_instances(config).items()):
        where = ", ".join(f"{k} ({config.where(k)})" for k in keys)
        value = values.get(name)
        if value is None and defaults_unknown:
            checks.append(Check(SKIPPED, f"SageMaker quota '{name}': no applied value, and {defaults_unknown}"))
        elif value is None:
            checks.append(Check(FAILED, f"no SageMaker quota '{name}' in {region}: the instance type is "
                                        f"not offered there; pick another in {where}"))
        elif value < count:
            checks.append(Check(FAILED, f"SageMaker quota '{name}' is {value:g} in {region}, a run needs "
                                        f"{count}: request an increase in Service Quotas, or change {where}"))
        else:
            checks.append(Check(OK, f"SageMaker quota '{name}' is {value:g} (a run needs {count})"))
    return checks


def simulation_problems(role: str, who: str, results: Iterable[dict]) -> List[str]:
    """'action on resource' for each SimulatePrincipalPolicy result that is not allowed."""
    out = []
    for result in results:
        if result.get("EvalDecision") != "allowed":
            out.append(f"{result.get('EvalActionName')} on {result.get('EvalResourceName')}")
    return sorted(set(out))


def _example_resource(pattern: str) -> str:
    """A concrete ARN a statement's pattern covers, for the simulator (which takes ARNs, not patterns)."""
    return pattern if pattern == "*" else pattern.replace("*", "mltp-preflight")


def _context_entries(condition: Optional[dict]) -> List[dict]:
    entries = []
    for tests in (condition or {}).values():
        for key, wanted in tests.items():
            value = _listed(wanted)[0]
            value = value.replace("*", "mltp-preflight") if isinstance(value, str) else value
            entries.append({"ContextKeyName": key, "ContextKeyValues": [str(value)], "ContextKeyType": "string"})
    return entries


def simulation_requests(policy: policies.Policy) -> List[dict]:
    """One SimulatePrincipalPolicy request per statement of the policy the role needs."""
    requests = []
    for statement in policy.statements:
        requests.append({
            "ActionNames": list(statement.actions),
            "ResourceArns": [_example_resource(r) for r in statement.resources],
            "ContextEntries": _context_entries(statement.condition),
        })
    return requests


def reach_warnings(config: Config, branch_build: bool) -> List[str]:
    """Settings that leave what the default branch produces within reach of a branch
    or pull request build (docs/trust.md). Warnings, not failures: the run works."""
    aws = config.aws
    branch_role = aws.branch_sagemaker_role_arn
    out = []
    if branch_role and branch_role == aws.sagemaker_role_arn:
        out.append(f"aws.branch_sagemaker_role_arn is aws.sagemaker_role_arn ({config.where('aws.branch_sagemaker_role_arn')}): "
                   f"branch and pull request jobs can still read and overwrite the default branch's runs "
                   f"(runs/*); give them a role of their own (`mltp iam-policy --role branch-sagemaker`)")
    elif branch_build and not branch_role:
        out.append(f"this branch build's jobs run as {role_name(aws.sagemaker_role_arn)}, the default branch's role "
                   f"(no aws.branch_sagemaker_role_arn): they can read and overwrite the default branch's runs "
                   f"(runs/*), a running default run's model and evaluation.json included (registered versions "
                   f"stay out of reach under registry/); set aws.branch_sagemaker_role_arn, see docs/trust.md")
    return out


def caller_policy_source(arn: str) -> str:
    """The IAM entity behind a caller ARN (an assumed-role session -> its role)."""
    parts = arn.split(":")
    if len(parts) >= 6 and parts[2] == "sts" and parts[5].startswith("assumed-role/"):
        return f"arn:{parts[1]}:iam::{parts[4]}:role/{parts[5].split('/')[1]}"
    return arn


# --------------------------------------------------------------------------- the checks


class Preflight:
    def __init__(self, config: Config, clients: Clients, branch_build: bool = False):
        self.config = config
        self.clients = clients
        self.branch_build = branch_build
        self.checks: List[Check] = []
        self.caller: Optional[str] = None

    def _add(self, status: str, text: str) -> None:
        self.checks.append(Check(status, text))

    def run(self) -> List[Check]:
        self._identity()
        self._bucket()
        self._roles()
        self._pass_roles()
        self._quotas()
        self._kms()
        self._model_package_group()
        self._notify_topic()
        self._simulate_roles()
        self._reach()
        return self.checks

    def _job_roles(self) -> List[Tuple[str, str, str]]:
        """(role of `mltp iam-policy`, config key, ARN) of the roles jobs run as."""
        aws = self.config.aws
        out = [("sagemaker", "aws.sagemaker_role_arn", aws.sagemaker_role_arn)]
        if aws.branch_sagemaker_role_arn and aws.branch_sagemaker_role_arn != aws.sagemaker_role_arn:
            out.append(("branch-sagemaker", "aws.branch_sagemaker_role_arn", aws.branch_sagemaker_role_arn))
        return out

    def _reach(self) -> None:
        """Warnings where a setting, or a job role's actual policy, lets a branch's
        jobs reach the default branch's runs or any job role the registry."""
        for text in reach_warnings(self.config, self.branch_build):
            self._add(WARNING, text)
        root = policies.Arns(self.config).s3_objects(f"{self.config.aws.prefix}/{self.config.name}/")
        probes = [("sagemaker", "registry/mltp-preflight/model.tar.gz", "the registry (registry/*), which only the "
                   "states role may write")]
        if self.config.aws.branch_sagemaker_role_arn:
            probes += [("branch-sagemaker", "registry/mltp-preflight/model.tar.gz", "the registry (registry/*), which "
                        "only the states role may write"),
                       ("branch-sagemaker", "runs/mltp-preflight/model/x/output/model.tar.gz",
                        "the default branch's runs (runs/*)")]
        arns = {role: arn for role, _, arn in self._job_roles()}
        for role, key, what in probes:
            arn = arns.get(role)
            if not arn or role not in getattr(self, "role_docs", {}):
                continue
            denied, skipped = self._simulate(arn, [{"ActionNames": ["s3:PutObject"], "ResourceArns": [root + key]}])
            if skipped is None and not denied:
                self._add(WARNING, f"role {role_name(arn)} may write {what}: its policy is broader than "
                                   f"`mltp iam-policy --role {role}`")

    def _identity(self) -> None:
        """Without a usable identity nothing else can be checked: this fails the way
        every verb does (AwsRefused, exit 5), with the one line that says whether the
        credentials are missing (and --local would do), expired or invalid."""
        self.caller = self.clients.caller_arn()

    def _bucket(self) -> None:
        cfg = self.config
        bucket, region, account = cfg.aws.bucket, self.clients.region, cfg.aws.account_id
        where = cfg.where("aws.bucket")
        try:
            answer = self.clients.s3.get_bucket_location(Bucket=bucket, ExpectedBucketOwner=account)
        except _AWS_ERRORS as exc:
            code = error_code(exc)
            if code == "NoSuchBucket":
                self._add(FAILED, f"bucket {bucket} does not exist: create it in {region}, or fix aws.bucket ({where})")
            elif code in _NOT_ALLOWED:
                self._add(FAILED, f"bucket {bucket}: refused; it belongs to another account than {account}, or this "
                                  f"identity lacks s3:GetBucketLocation ({_policy_hint('jenkins')})")
            else:
                self._add(SKIPPED, f"bucket {bucket}: {_skipped_because(exc, 's3:GetBucketLocation') or exc}")
            return
        location = answer.get("LocationConstraint") or "us-east-1"
        location = {"EU": "eu-west-1"}.get(location, location)
        if location != region:
            self._add(FAILED, f"bucket {bucket} is in {location}, not in aws.region {region} ({cfg.where('aws.region')}): "
                              f"SageMaker jobs need a bucket in their region; create one in {region} or fix aws.region")
        else:
            self._add(OK, f"bucket {bucket} exists in {region}, owned by account {account}")

    def _roles(self) -> None:
        self.role_docs: Dict[str, Optional[dict]] = {}
        roles = [("states", "aws.states_role_arn", self.config.aws.states_role_arn, "states.amazonaws.com")]
        roles += [(role, key, arn, "sagemaker.amazonaws.com") for role, key, arn in self._job_roles()]
        for role, key, arn, service in roles:
            name = role_name(arn)
            fix = (f"create it with `mltp iam-policy --role {role} --trust` as trust policy and "
                   f"`mltp iam-policy --role {role}` as permissions, or fix {key} ({self.config.where(key)})")
            try:
                found = self.clients.iam.get_role(RoleName=name)["Role"]
            except _AWS_ERRORS as exc:
                if error_code(exc) == "NoSuchEntity":
                    self._add(FAILED, f"role {name} does not exist: {fix}")
                else:
                    self._add(SKIPPED, f"role {name}: {_skipped_because(exc, 'iam:GetRole') or exc}")
                continue
            if found.get("Arn") and found["Arn"] != arn:
                self._add(FAILED, f"role {name} is {found['Arn']}, not {arn}: fix {key} ({self.config.where(key)})")
                continue
            problem = trust_problem(found.get("AssumeRolePolicyDocument") or {}, service)
            if problem:
                self._add(FAILED, f"role {name} {problem}: set its trust policy to `mltp iam-policy --role {role} --trust`")
            else:
                self.role_docs[role] = found
                self._add(OK, f"role {name} exists and trusts {service}")

    def _simulate(self, source: str, requests: Sequence[dict]) -> Tuple[Optional[List[str]], Optional[str]]:
        """(denied 'action on resource' lines, None) or (None, why skipped)."""
        denied: List[str] = []
        try:
            for request in requests:
                paginator = self.clients.iam.get_paginator("simulate_principal_policy")
                for page in paginator.paginate(PolicySourceArn=source, **{k: v for k, v in request.items() if v}):
                    denied += simulation_problems("", source, page.get("EvaluationResults", []))
        except _AWS_ERRORS as exc:
            return None, _skipped_because(exc, "iam:SimulatePrincipalPolicy") or str(exc)
        return sorted(set(denied)), None

    def _pass_roles(self) -> None:
        """Jenkins passes the states role (deploy); the states role passes the SageMaker role (each job)."""
        cfg = self.config
        pairs = [(self.caller and caller_policy_source(self.caller), cfg.aws.states_role_arn, "states.amazonaws.com", "jenkins")]
        pairs += [(cfg.aws.states_role_arn, arn, "sagemaker.amazonaws.com", "states") for _, _, arn in self._job_roles()]
        for source, target, service, role in pairs:
            if not source:
                continue
            request = {"ActionNames": ["iam:PassRole"], "ResourceArns": [target],
                       "ContextEntries": [{"ContextKeyName": "iam:PassedToService", "ContextKeyValues": [service],
                                           "ContextKeyType": "string"}]}
            denied, skipped = self._simulate(source, [request])
            who = "this identity" if role == "jenkins" else f"role {role_name(source)}"
            if skipped:
                self._add(SKIPPED, f"whether {who} may pass role {role_name(target)}: {skipped}")
            elif denied:
                self._add(FAILED, f"{who} may not pass role {role_name(target)} to {service}: {_policy_hint(role)}")
            else:
                self._add(OK, f"{who} may pass role {role_name(target)}")

    def _quota_pages(self, operation: str) -> List[dict]:
        quotas: List[dict] = []
        for page in self.clients.quotas.get_paginator(operation).paginate(ServiceCode="sagemaker"):
            quotas += page.get("Quotas", [])
        return quotas

    def _quotas(self) -> None:
        """Applied values (ListServiceQuotas lists only quotas that have one), and the
        defaults (ListAWSDefaultServiceQuotas) for those it does not list."""
        try:
            applied = self._quota_pages("list_service_quotas")
        except _AWS_ERRORS as exc:
            why = _skipped_because(exc, "servicequotas:ListServiceQuotas") or str(exc)
            self._add(SKIPPED, f"SageMaker instance quotas in {self.clients.region}: {why}")
            return
        listed = {q.get("QuotaName") for q in applied}
        defaults: List[dict] = []
        unknown = None
        if set(needed_instances(self.config)) - listed:
            try:
                defaults = [q for q in self._quota_pages("list_aws_default_service_quotas")
                            if q.get("QuotaName") not in listed]
            except _AWS_ERRORS as exc:
                unknown = _skipped_because(exc, "servicequotas:ListAWSDefaultServiceQuotas") or str(exc)
        self.checks += quota_problems(self.config, applied + defaults, self.clients.region, unknown)

    def _kms(self) -> None:
        key = self.config.aws.kms_key_id
        if not key:
            return
        where = self.config.where("aws.kms_key_id")
        try:
            meta = self.clients.kms.describe_key(KeyId=key)["KeyMetadata"]
        except _AWS_ERRORS as exc:
            if error_code(exc) == "NotFoundException":
                self._add(FAILED, f"KMS key {key} not found in {self.clients.region}: fix aws.kms_key_id ({where})")
            else:
                self._add(SKIPPED, f"KMS key {key}: {_skipped_because(exc, 'kms:DescribeKey') or exc}")
            return
        usage = meta.get("KeyUsage") or "ENCRYPT_DECRYPT"  # the API's default (moto leaves it out)
        if meta.get("KeyState") != "Enabled" or usage != "ENCRYPT_DECRYPT":
            self._add(FAILED, f"KMS key {key} is {meta.get('KeyState')} for {usage}: it must be an "
                              f"enabled ENCRYPT_DECRYPT key; enable it or fix aws.kms_key_id ({where})")
        elif meta.get("KeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
            self._add(FAILED, f"KMS key {key} is {meta.get('KeySpec')}: S3 and SageMaker need a symmetric key ({where})")
        else:
            self._add(OK, f"KMS key {key} is enabled ({meta.get('Arn')})")

    def _model_package_group(self) -> None:
        group = self.config.registry.model_package_group
        try:
            self.clients.sagemaker.describe_model_package_group(ModelPackageGroupName=group)
            self._add(OK, f"model package group {group} exists")
            return
        except _AWS_ERRORS as exc:
            if error_code(exc) not in ("ValidationException", "ResourceNotFound"):
                self._add(SKIPPED, f"model package group {group}: {_skipped_because(exc, 'sagemaker:DescribeModelPackageGroup') or exc}")
                return
        if not self.caller:
            return
        arn = policies.Arns(self.config).package_group()
        denied, skipped = self._simulate(caller_policy_source(self.caller),
                                         [{"ActionNames": ["sagemaker:CreateModelPackageGroup"], "ResourceArns": [arn]}])
        if skipped:
            self._add(OK, f"model package group {group} does not exist yet; the first default-branch deploy creates it "
                          f"(whether it may: {skipped})")
        elif denied:
            self._add(FAILED, f"model package group {group} does not exist and this identity may not create it: "
                              f"{_policy_hint('jenkins')}")
        else:
            self._add(OK, f"model package group {group} does not exist yet; the first default-branch deploy creates it")

    def _notify_topic(self) -> None:
        """The topic of `notify` exists and lets EventBridge publish to it; else
        the statement to add to its access policy."""
        notify = self.config.notify
        if notify is None:
            return
        from . import notifications

        topic, where = notify.topic_arn, self.config.where("notify.topic_arn")
        try:
            attributes = self.clients.client("sns").get_topic_attributes(TopicArn=topic)["Attributes"]
        except _AWS_ERRORS as exc:
            if error_code(exc) in ("NotFound", "NotFoundException"):
                self._add(FAILED, f"SNS topic {topic} not found: create it or fix notify.topic_arn ({where})")
            else:
                self._add(SKIPPED, f"SNS topic {topic}: {_skipped_because(exc, 'sns:GetTopicAttributes') or exc}")
            return
        problem = notifications.topic_problem(attributes.get("Policy"), topic)
        if problem:
            statement = json.dumps(notifications.topic_statement(topic), sort_keys=True)
            self._add(FAILED, f"SNS topic {topic}: {problem}; add this statement to its access policy: {statement}")
        elif attributes.get("KmsMasterKeyId"):
            self._add(OK, f"SNS topic {topic} lets EventBridge publish (it is encrypted with "
                          f"{attributes['KmsMasterKeyId']}: that key's policy must let events.amazonaws.com use "
                          "kms:GenerateDataKey and kms:Decrypt)")
        else:
            self._add(OK, f"SNS topic {topic} lets EventBridge publish")

    def _simulate_roles(self) -> None:
        """What `mltp iam-policy` says each role needs, asked of IAM's policy simulator."""
        roles = [("states", self.config.aws.states_role_arn)] + [(role, arn) for role, _, arn in self._job_roles()]
        for role, arn in roles:
            if role not in getattr(self, "role_docs", {}):
                continue  # missing or untrusting: already reported
            try:
                requests = simulation_requests(policies.policy(self.config, role))
            except Exception as exc:  # the image lookup of the sagemaker role's policy
                self._add(SKIPPED, f"permissions of role {role_name(arn)}: {exc}")
                continue
            denied, skipped = self._simulate(arn, requests)
            if skipped:
                self._add(SKIPPED, f"permissions of role {role_name(arn)}: {skipped}")
            elif denied:
                shown = "; ".join(denied[:5]) + (f" (and {len(denied) - 5} more)" if len(denied) > 5 else "")
                self._add(FAILED, f"role {role_name(arn)} lacks {shown}: {_policy_hint(role)}")
            else:
                self._add(OK, f"role {role_name(arn)} has every permission `mltp iam-policy --role {role}` lists")


def preflight(config: Config, clients: Clients, branch_build: bool = False) -> List[Check]:
    """`branch_build`: checked for a branch or pull request build (its warnings differ)."""
    return Preflight(config, clients, branch_build).run()
