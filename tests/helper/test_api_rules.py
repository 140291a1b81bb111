"""Rules across fields that AWS documents for the calls mltp makes, and that
neither botocore's shapes nor moto enforce (issue 10, item 9).

Each rule quotes the sentence of botocore's own documentation (service-2.json)
it comes from; a test checks the sentence is still there, so a rule cannot drift
from its source. The checker then applies every rule to

- every Task of the rendered state machine definition, its Parameters resolved
  for real execution inputs (tests/helper/asl.py), for several configs;
- every AWS call the helper made in the control-plane tests (recorded by
  tests/conftest.py, as for the IAM coverage test).

A call that breaks a rule fails the test naming the call, the rule and its source.
"""

import html
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import botocore.session
import pytest

import asl
from variants import config_variant
from mltp import gate, naming

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"
BASE = ROOT / "tests" / "fixtures" / "base"
_SESSION = botocore.session.get_session()


@dataclass(frozen=True)
class Rule:
    service: str  # botocore's service name
    operations: tuple  # operation names the rule applies to
    member: Optional[str]  # the shape member whose documentation states it (None: the operation's)
    quote: str  # the sentence, as botocore documents it (tags stripped, spaces collapsed)
    check: Callable[[Dict[str, Any]], Optional[str]]  # the request -> what is wrong, or None
    shape: Optional[str] = None  # the shape holding `member`, when not the operation's input

    def source(self) -> str:
        return f"{self.service} {'/'.join(self.operations)} {self.member or '(operation)'}: \"{self.quote}\""


def _get(params: Dict[str, Any], *path: str) -> Any:
    value: Any = params
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _one_of(*names: str) -> Callable[[Dict[str, Any]], Optional[str]]:
    def check(p):
        given = [n for n in names if p.get(n) not in (None, "", False)]
        return None if len(given) == 1 else f"gives {given or 'none'} of {list(names)}: exactly one is required"
    return check


def _versioned(p, member):
    if p.get("ModelPackageGroupName") and member in p:
        return f"{member} with ModelPackageGroupName (a versioned model)"
    return None


def _clusters(p) -> List[Dict[str, Any]]:
    """The instance settings of a processing or training job request."""
    found = []
    for config in (_get(p, "ProcessingResources", "ClusterConfig"), p.get("ResourceConfig")):
        if isinstance(config, dict):
            found.append(config)
    return found


def _kms_on_local_storage(p) -> Optional[str]:
    from sagemaker.utils import instance_supports_kms

    for config in _clusters(p):
        kind = config.get("InstanceType")
        if config.get("VolumeKmsKeyId") and isinstance(kind, str) and not instance_supports_kms(kind):
            return f"VolumeKmsKeyId with {kind}, an instance type with local storage"
    return None


def _processing_gzip(p) -> Optional[str]:
    for item in p.get("ProcessingInputs") or []:
        s3 = item.get("S3Input") or {}
        if s3.get("S3CompressionType") == "Gzip" and s3.get("S3InputMode") != "Pipe":
            return f"input {item.get('InputName')}: S3CompressionType Gzip without S3InputMode Pipe"
    return None


def _augmented_manifest(p) -> Optional[str]:
    for channel in p.get("InputDataConfig") or []:
        s3 = _get(channel, "DataSource", "S3DataSource") or {}
        if s3.get("S3DataType") == "AugmentedManifestFile" and channel.get("InputMode") != "Pipe":
            return f"channel {channel.get('ChannelName')}: AugmentedManifestFile without InputMode Pipe"
    return None


def _preferences(p) -> Optional[str]:
    for config in _clusters(p):
        if config.get("InstancePreferences") and config.get("InstanceType"):
            return "InstancePreferences with InstanceType"
    return None


def _algorithm(p) -> Optional[str]:
    spec = p.get("AlgorithmSpecification") or {}
    given = [k for k in ("AlgorithmName", "TrainingImage") if spec.get(k)]
    return None if len(given) == 1 else f"AlgorithmSpecification gives {given or 'none'} of AlgorithmName, TrainingImage"


_LOGGING_NAME = re.compile(r"^[0-9A-Za-z_-]+$")
_RETENTION_DAYS = {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
                   3288, 3653}

RULES = (
    # ---- the state machine's Tasks
    Rule("sagemaker", ("CreateModelPackage",), "Tags",
         "If you supply ModelPackageGroupName , your model package belongs to the model group you specify and uses "
         "the tags associated with the model group. In this case, you cannot supply a tag argument.",
         lambda p: _versioned(p, "Tags")),
    Rule("sagemaker", ("CreateModelPackage",), "ModelPackageName",
         "This parameter is required for unversioned models. It is not applicable to versioned models.",
         lambda p: _versioned(p, "ModelPackageName")),
    Rule("sagemaker", ("CreateModelPackage",), "CertifyForMarketplace",
         "This parameter is optional for unversioned models, and does not apply to versioned models.",
         lambda p: _versioned(p, "CertifyForMarketplace")),
    Rule("sagemaker", ("CreateModelPackage",), "ModelApprovalStatus",
         "This parameter is optional for versioned models, and does not apply to unversioned models.",
         lambda p: "ModelApprovalStatus without ModelPackageGroupName (an unversioned model)"
         if "ModelApprovalStatus" in p and not p.get("ModelPackageGroupName") else None),
    Rule("sagemaker", ("CreateModelPackage",), None,
         "To create a model package by specifying a Docker container that contains your inference code and the "
         "Amazon S3 location of your model artifacts, provide values for InferenceSpecification .",
         lambda p: None if p.get("InferenceSpecification") or p.get("SourceAlgorithmSpecification")
         else "neither InferenceSpecification nor SourceAlgorithmSpecification"),
    Rule("sagemaker", ("CreateProcessingJob",), "VolumeKmsKeyId",
         "You can't request a VolumeKmsKeyId when using an instance type with local storage.",
         _kms_on_local_storage, shape="ProcessingClusterConfig"),
    Rule("sagemaker", ("CreateTrainingJob",), "VolumeKmsKeyId",
         "You can't request a VolumeKmsKeyId when using an instance type with local storage.",
         _kms_on_local_storage, shape="ResourceConfig"),
    Rule("sagemaker", ("CreateProcessingJob",), "S3CompressionType",
         "Gzip can only be used when Pipe mode is specified as the S3InputMode .", _processing_gzip,
         shape="ProcessingS3Input"),
    Rule("sagemaker", ("CreateProcessingJob",), "InstancePreferences",
         "InstancePreferences is mutually exclusive with InstanceType .", _preferences, shape="ProcessingClusterConfig"),
    Rule("sagemaker", ("CreateTrainingJob",), "AlgorithmName",
         "If you specify a value for the AlgorithmName parameter, you can't specify a value for TrainingImage , and "
         "vice versa.", _algorithm, shape="AlgorithmSpecification"),
    Rule("sagemaker", ("CreateTrainingJob",), "S3DataType",
         "AugmentedManifestFile can only be used if the Channel's input mode is Pipe .", _augmented_manifest,
         shape="S3DataSource"),
    # ---- the helper's calls
    Rule("logs", ("DescribeLogStreams", "GetLogEvents"), "logGroupName",
         "You must include either logGroupIdentifier or logGroupName , but not both.",
         _one_of("logGroupName", "logGroupIdentifier")),
    Rule("logs", ("DescribeLogStreams",), "logStreamNamePrefix",
         "If orderBy is LastEventTime , you cannot specify this parameter.",
         lambda p: "logStreamNamePrefix with orderBy LastEventTime"
         if p.get("orderBy") == "LastEventTime" and p.get("logStreamNamePrefix") else None),
    Rule("logs", ("PutRetentionPolicy",), "retentionInDays",
         "Possible values are: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, "
         "2557, 2922, 3288, and 3653.",
         lambda p: None if p.get("retentionInDays") in _RETENTION_DAYS else f"retentionInDays {p.get('retentionInDays')}"),
    Rule("logs", ("PutQueryDefinition",), "logGroupNames",
         "If you are updating an existing query definition for the Logs Insights QL or OpenSearch Service PPL and you "
         "omit this parameter, then the updated definition will contain no log groups.",
         lambda p: "an update (queryDefinitionId) without logGroupNames"
         if p.get("queryDefinitionId") and not p.get("logGroupNames") else None),
    Rule("stepfunctions", ("ListExecutions",), "stateMachineArn",
         "You can specify either a mapRunArn or a stateMachineArn , but not both.",
         _one_of("stateMachineArn", "mapRunArn")),
    Rule("stepfunctions", ("ListExecutions",), "statusFilter",
         "If you provide a PENDING_REDRIVE statusFilter, you must specify mapRunArn .",
         lambda p: "statusFilter PENDING_REDRIVE without mapRunArn"
         if p.get("statusFilter") == "PENDING_REDRIVE" and not p.get("mapRunArn") else None),
    Rule("stepfunctions", ("UpdateStateMachine",), None,
         "You must include at least one of definition or roleArn or you will receive a MissingRequiredParameter error.",
         lambda p: None if p.get("definition") or p.get("roleArn") else "neither definition nor roleArn"),
    Rule("stepfunctions", ("UpdateStateMachine",), "versionDescription",
         "You can only specify the versionDescription parameter if you've set publish to true .",
         lambda p: "versionDescription without publish" if p.get("versionDescription") and not p.get("publish") else None),
    Rule("stepfunctions", ("CreateStateMachine",), "versionDescription",
         "You can only set the description if the publish parameter is set to true .",
         lambda p: "versionDescription without publish" if p.get("versionDescription") and not p.get("publish") else None),
    # ---- the retraining trigger's installation (mltp trigger install)
    Rule("lambda", ("AddPermission",), "Principal",
         "If you specify a service, use SourceArn or SourceAccount to limit who can invoke the function through "
         "that service.",
         lambda p: "a service principal without SourceArn or SourceAccount"
         if str(p.get("Principal", "")).endswith(".amazonaws.com") and not (p.get("SourceArn") or p.get("SourceAccount"))
         else None),
    Rule("lambda", ("CreateFunction", "UpdateFunctionCode", "UpdateFunctionConfiguration", "AddPermission",
                    "GetFunction", "DeleteFunction"), "FunctionName",
         "If you specify only the function name, it is limited to 64 characters in length.",
         lambda p: f"function name {p.get('FunctionName')!r} over 64 characters"
         if ":" not in str(p.get("FunctionName", "")) and len(str(p.get("FunctionName", ""))) > 64 else None),
    # mltp's state machines always log to CloudWatch Logs (deploy), so their names and
    # their executions' names keep to the logging set.
    Rule("stepfunctions", ("CreateStateMachine", "StartExecution"), "name",
         "To enable logging with CloudWatch Logs, the name should only contain 0-9, A-Z, a-z, - and _.",
         lambda p: None if "name" not in p or _LOGGING_NAME.match(str(p["name"])) else f"name {p['name']!r}"),
)


def _clean(text: str) -> str:
    return html.unescape(re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", text or ""))).strip()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: f"{'/'.join(r.operations)}.{r.member or 'op'}")
def test_each_rule_is_what_botocore_documents(rule):
    model = _SESSION.get_service_model(rule.service)
    for name in rule.operations:
        operation = model.operation_model(name)
        if rule.member is None:
            documentation = operation.documentation
        else:
            shape = model.shape_for(rule.shape) if rule.shape else operation.input_shape
            assert rule.member in shape.members, f"{rule.source()}: no member {rule.member} in {shape.name}"
            documentation = shape.members[rule.member].documentation
        assert " ".join(rule.quote.split()) in _clean(documentation), rule.source()


def violations(service: str, operation: str, params: Dict[str, Any]) -> List[str]:
    """Every rule the request breaks, each with its source."""
    out = []
    for rule in RULES:
        if rule.service == service and operation in rule.operations:
            problem = rule.check(params)
            if problem:
                out.append(f"{service}.{operation}: {problem}; {rule.source()}")
    return out


# --------------------------------------------------------------------------- the definition


def _local_storage_kms(data):
    """kms_key_id on instance types with local NVMe storage (g4dn, g5) and one without."""
    data["aws"]["kms_key_id"] = "alias/mlops"
    data["steps"] = {"preprocessing": {"instance_type": "ml.g4dn.xlarge", "framework": "pytorch"},
                     "training": {"instance_type": "ml.g5.xlarge", "framework": "pytorch"},
                     "evaluation": {"instance_type": "ml.m5.large"}}


def _model_quality(data):
    data["aws"]["tags"] = {"team": "fds"}
    data["gate"] = [{"metric": "mse", "max": 5, "path": "regression_metrics.mse.value"},
                    {"metric": "r2", "min": 0.5}]


VARIANTS = {
    "example": (EXAMPLE, None),
    "fixture": (BASE, None),
    "kms on local storage": (BASE, _local_storage_kms),
    "tags and model-quality gate": (BASE, _model_quality),
    "built-in algorithm": (ROOT / "tests" / "fixtures" / "builtin-xgboost", None),
}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    """(variant, state, resource, resolved Parameters) for every Task of every variant."""
    from mltp import definition

    tmp = tmp_path_factory.mktemp("api-rules")
    out = []
    for index, (variant, (source, edit)) in enumerate(VARIANTS.items()):
        cfg = config_variant(tmp, source, edit, name=f"v{index}")
        rendered = definition.build_definition(cfg)
        execution = naming.execution_input(cfg, cfg.name, "jenkins-1", "ab" * 32, True, "c0ffee", "https://j/1/")
        report = {"regression_metrics": {r.metric: {"value": 0.5} for r in cfg.gate},
                  "metrics": {r.metric: {"value": 0.5} for r in cfg.gate}}
        state = dict(execution.to_dict(), evaluation={"report": report, "ETag": '"0123456789abcdef0123456789abcdef"'}, gate={"values": gate.merged_entries(report)})
        ctx = asl.context(execution.to_dict(), f"arn:aws:states:{cfg.aws.region}:1:execution:{cfg.name}:jenkins-1", state)
        for name, task in asl.task_states(rendered):
            out.append((variant, name, task["Resource"], asl.resolve(task.get("Parameters", {}), ctx)))
    return out


def test_every_task_of_the_definition_keeps_the_documented_rules(tasks):
    problems = []
    checked = set()
    for variant, name, resource, params in tasks:
        operation = asl.operation(resource)
        service = operation.service_model.service_name
        checked.add(f"{service}.{operation.name}")
        problems += [f"{variant}: {name}: {v}" for v in violations(service, operation.name, params)]
    assert not problems, "\n".join(problems)
    assert {"sagemaker.CreateProcessingJob", "sagemaker.CreateTrainingJob", "sagemaker.CreateModelPackage"} <= checked


def test_register_sends_no_tags_even_with_aws_tags(tasks):
    """The rule that started this: aws.tags set, and Register still sends none."""
    (params,) = [p for v, n, _, p in tasks if v == "tags and model-quality gate" and n == "Register"]
    assert params["ModelPackageGroupName"] and "Tags" not in params
    jobs = [p for v, n, _, p in tasks if v == "tags and model-quality gate" and n != "Register" and "Tags" in p]
    assert len(jobs) == 3  # the jobs keep their tags


def test_the_checker_names_what_aws_would_refuse(tasks):
    """The checker fails for the requests the rules are about (so a pass means something)."""
    (register,) = [p for v, n, _, p in tasks if v == "example" and n == "Register"]
    found = violations("sagemaker", "CreateModelPackage", dict(register, Tags=[{"Key": "team", "Value": "fds"}]))
    assert len(found) == 1 and "Tags with ModelPackageGroupName" in found[0] and "cannot supply a tag" in found[0]
    (training,) = [p for v, n, _, p in tasks if v == "kms on local storage" and n == "Training"]
    broken = dict(training, ResourceConfig=dict(training["ResourceConfig"], VolumeKmsKeyId="alias/mlops"))
    assert violations("sagemaker", "CreateTrainingJob", broken) == [
        "sagemaker.CreateTrainingJob: VolumeKmsKeyId with ml.g5.xlarge, an instance type with local storage; "
        + RULES[6].source()]
    assert violations("logs", "DescribeLogStreams", {"logGroupName": "g", "orderBy": "LastEventTime",
                                                     "logStreamNamePrefix": "job/"})
    assert violations("stepfunctions", "StartExecution", {"name": "run name"})
    assert violations("lambda", "AddPermission", {"FunctionName": "f", "Principal": "s3.amazonaws.com"})
    assert not violations("lambda", "AddPermission", {"FunctionName": "f", "Principal": "s3.amazonaws.com",
                                                      "SourceArn": "arn:aws:s3:::b"})


def test_volume_kms_key_only_where_sagemaker_takes_one(tasks):
    by_state = {n: p for v, n, _, p in tasks if v == "kms on local storage"}
    assert "VolumeKmsKeyId" not in by_state["Preprocessing"]["ProcessingResources"]["ClusterConfig"]
    assert "VolumeKmsKeyId" not in by_state["Training"]["ResourceConfig"]
    assert by_state["Evaluation"]["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == "alias/mlops"
    # The outputs are still encrypted with the key.
    assert by_state["Training"]["OutputDataConfig"]["KmsKeyId"] == "alias/mlops"
    assert by_state["Preprocessing"]["ProcessingOutputConfig"]["KmsKeyId"] == "alias/mlops"


# --------------------------------------------------------------------------- the helper's calls

# Operations the control-plane tests must have recorded, so the rules on them were applied.
RECORDED_OPERATIONS = {"lambda.AddPermission", "lambda.CreateFunction",
                       "logs.DescribeLogStreams", "logs.GetLogEvents", "logs.PutRetentionPolicy",
                       "logs.PutQueryDefinition", "stepfunctions.CreateStateMachine",
                       "stepfunctions.UpdateStateMachine", "stepfunctions.StartExecution"}


def test_the_helpers_recorded_calls_keep_the_documented_rules(tmp_path):
    from test_iam_coverage import _recorded_calls

    conftest = sys.modules.get("conftest") or sys.modules.get("tests.conftest")
    recorded = _recorded_calls(tmp_path, conftest.CONTROL_PLANE_MODULES + conftest.OTHER_ROLE_MODULES)
    problems, seen = [], set()
    for test, entry in recorded.items():
        for call in entry["calls"]:
            service, operation = call["service"], call["operation"]
            seen.add(f"{service}.{operation}")
            problems += [f"{test}: {v}" for v in violations(service, operation, call["params"])]
    assert not problems, "\n".join(sorted(set(problems)))
    assert RECORDED_OPERATIONS <= seen, f"not recorded: {sorted(RECORDED_OPERATIONS - seen)}"
