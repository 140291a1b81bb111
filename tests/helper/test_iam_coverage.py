"""The generated IAM policies stay true: valid by IAM's own service authorization
data, and covering what the definition's tasks and the helper's calls need.

- states: every Task resource of the rendered definition, with what AWS documents
  for its integration (the `.sync` EventBridge rules, PassRole, tags), resolved for
  real execution inputs of the default branch and of a branch;
- jenkins: every AWS call the helper made in the control-plane tests (recorded with
  botocore's before-call event, tests/conftest.py), with its real resource;
- trigger: every AWS call the retraining trigger's handler made in
  test_trigger.py (recorded the same way, as the trigger role's calls), against
  `mltp iam-policy --role trigger` and the role `mltp trigger install` creates.

A missing permission fails the test and names the action and the resource.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mltp import config as config_mod
from mltp import iam_actions, naming, policies, policy_formats

import asl
import iam_check
from variants import config_variant

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"


def _everything(data):
    data["aws"]["kms_key_id"] = "alias/mltp-models"
    data["aws"]["prefix"] = "teams/fds"
    data["steps"]["preprocessing"]["inputs"] = [{"name": "raw", "source": "s3://mlops-data/fraud/transactions/"}]
    data["registry"]["model_package_group"] = "FraudModels"


def _key_arn(data):
    data["aws"]["kms_key_id"] = "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    data["aws"]["tags"] = {}


@pytest.fixture(scope="module")
def configs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("iam")
    return {
        "example": config_mod.load(EXAMPLE),
        "everything": config_variant(tmp, EXAMPLE, _everything, "everything"),
        "key-arn": config_variant(tmp, EXAMPLE, _key_arn, "key-arn"),
    }


# --------------------------------------------------------------------------- the table against IAM's data


def test_every_action_the_table_names_is_an_iam_action():
    named = set(iam_actions.LOG_DELIVERY_ACTIONS) | set(iam_actions.EVENTS_RULE_ACTIONS)
    named |= {a for actions in iam_actions.RENAMED.values() for a in actions}
    named |= {a for actions in iam_actions.EXTRA_FOR_MEMBER.values() for a in actions}
    for integration in iam_actions.INTEGRATIONS.values():
        named |= set(integration.actions) | set(integration.source_actions) | ({integration.tags_action} - {None})
    unknown = sorted(a for a in named if iam_check.iam_action(a) is None)
    assert not unknown, f"not IAM actions: {unknown}"


def test_the_table_maps_operations_as_iam_names_them():
    assert iam_actions.actions_for("s3", "HeadObject") == ("s3:GetObject",)
    assert iam_actions.actions_for("stepfunctions", "StartExecution") == ("states:StartExecution",)
    assert iam_actions.actions_for("s3", "PutBucketNotificationConfiguration") == ("s3:PutBucketNotification",)
    with_logging = iam_actions.actions_for("stepfunctions", "CreateStateMachine",
                                           {"loggingConfiguration": True, "roleArn": "arn:aws:iam::1:role/x"})
    assert "logs:CreateLogDelivery" in with_logging and "iam:PassRole" in with_logging
    assert iam_actions.actions_for("sts", "GetCallerIdentity") == ()


# --------------------------------------------------------------------------- valid policies

ALL_FEATURES = policies.FEATURES


@pytest.mark.parametrize("role", policies.ROLES)
@pytest.mark.parametrize("variant", ["example", "everything", "key-arn"])
def test_policy_is_valid_by_iam_data(configs, role, variant):
    from parliament import analyze_policy_string

    policy = policies.policy(configs[variant], role, ALL_FEATURES)
    document = policy.document()
    findings = [(f.issue, f.detail) for f in analyze_policy_string(json.dumps(document)).findings
                if not _parliament_false_positive(f, policy)]
    assert not findings, findings
    for statement in policy.statements:
        for action in statement.actions:
            assert "*" not in action and iam_check.iam_action(action), f"{statement.sid}: {action}"
            if statement.resources == ("*",):
                required = [name for name, needed in iam_check.resource_types(action) if needed]
                assert not required, f"{statement.sid}: {action} takes a {required} resource, not '*'"
                assert statement.note, f"{statement.sid}: Resource '*' without a note saying why"
            else:
                formats = iam_check.arn_formats(action)
                for resource in statement.resources:
                    assert any(re.fullmatch(f, resource) for f in formats), \
                        f"{statement.sid}: {resource} is not a resource of {action}"


def _parliament_false_positive(finding, policy) -> bool:
    """parliament 1.6 asks every *required* resource type of an action to be matched
    (IAM needs one: states:DescribeExecution takes an execution OR an express
    execution), and knows only action-level condition keys (kms:ResourceAliases is a
    key-level one). Both are checked here against IAM's data instead."""
    if finding.issue == "RESOURCE_MISMATCH":
        for item in finding.detail:
            formats = iam_check.arn_formats(item["action"])
            resources = [r for s in policy.statements if item["action"] in s.actions for r in s.resources]
            if not all(any(re.fullmatch(f, r) for f in formats) for r in resources):
                return False
        return True
    if finding.issue == "UNKNOWN_CONDITION_FOR_ACTION":
        key, action = re.match(r"Unknown condition (\S+) for action (\S+)", finding.detail).groups()
        entry = iam_check.iam_action(action)
        prefix = action.split(":")[0]
        types = {r["resource_type"].rstrip("*") for r in entry["resource_types"]}
        levels = [r["condition_keys"] for r in iam_check._services()[prefix]["resources"] if r["resource"] in types]
        return any(key in keys for keys in levels)
    return False


def test_resources_stay_inside_the_model(configs):
    """No resource of one model covers another model whose name starts the same."""
    cfg = configs["example"]
    for role in policies.ROLES:
        document = policies.policy(cfg, role, ALL_FEATURES).document()
        assert not iam_check.allows(document, "states:StartExecution",
                                    "arn:aws:states:ap-northeast-2:123456789012:stateMachine:fraud-detection-v2")
        assert not iam_check.allows(document, "s3:GetObject",
                                    "arn:aws:s3:::mlops-artifacts/mltp/fraud-detection-v2/code/x")
        assert not iam_check.allows(document, "sagemaker:CreateTrainingJob",
                                    "arn:aws:sagemaker:ap-northeast-2:123456789012:training-job/fraud-detection-v2-train-1")


def test_kms_alias_is_matched_on_the_key_it_names(configs):
    document = policies.policy(configs["everything"], "sagemaker").document()
    key = "arn:aws:kms:ap-northeast-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    assert iam_check.allows(document, "kms:Decrypt", key, {"kms:ResourceAliases": ["alias/mltp-models"]})
    assert not iam_check.allows(document, "kms:Decrypt", key, {"kms:ResourceAliases": ["alias/other"]})
    assert not iam_check.allows(policies.policy(configs["example"], "sagemaker").document(), "kms:Decrypt", key)


def test_inputs_of_the_config_are_readable_by_the_jobs(configs):
    document = policies.policy(configs["everything"], "sagemaker").document()
    assert iam_check.allows(document, "s3:GetObject", "arn:aws:s3:::mlops-data/fraud/transactions/2024/01.csv")
    assert iam_check.allows(document, "s3:ListBucket", "arn:aws:s3:::mlops-data", {"s3:prefix": "fraud/transactions/"})
    assert not iam_check.allows(document, "s3:GetObject", "arn:aws:s3:::mlops-data/other/x.csv")


@pytest.mark.parametrize("role", policies.ROLES)
def test_cloudformation_and_terraform_carry_the_same_documents(configs, role):
    import hcl2

    cfg = configs["everything"]
    policy = policies.policy(cfg, role, ALL_FEATURES)
    trust = policies.trust(cfg, role)
    cfn, _ = policy_formats.render(policy, trust, "cloudformation")
    template = yaml.safe_load(cfn)
    (resource,) = template["Resources"].values()
    assert resource["Type"] == "AWS::IAM::Role"
    assert resource["Properties"]["AssumeRolePolicyDocument"] == trust
    assert resource["Properties"]["Policies"][0]["PolicyDocument"] == policy.document()
    if any(s.note for s in policy.statements):
        assert "# AWS allows nothing narrower" in cfn

    tf, _ = policy_formats.render(policy, trust, "terraform")
    parsed = hcl2.loads(tf)
    blocks = {_unquote(next(iter(r))): next(iter(next(iter(r.values())).values())) for r in parsed["resource"]}
    assert set(blocks) == {"aws_iam_role", "aws_iam_role_policy"}
    for block, expected in ((blocks["aws_iam_role"]["assume_role_policy"], trust),
                            (blocks["aws_iam_role_policy"]["policy"], policy.document())):
        assert _hcl_object(block) == expected


def _hcl_object(text):
    """python-hcl2 leaves jsonencode(...) as text: '${jsonencode({...})}'. Its
    argument is HCL object syntax; parse it as an attribute to get the value."""
    import hcl2

    inner = text[len("${jsonencode("):-len(")}")]
    return _unquote(hcl2.loads(f"value = {inner}\n")["value"])


def _unquote(value):
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return json.loads(value)
    return value


# --------------------------------------------------------------------------- states: the definition's tasks


REGISTERING_STATES = ("CopyModel", "CopyEvaluation", "Register")  # reached only when the run's Register is true


def _task_needs(cfg, definition, execution_input, execution_id):
    # The state data when the last Task (Register) runs: the input plus evaluation.json's gate metrics.
    from mltp import gate

    report = {"metrics": {r.metric: {"value": 0.5} for r in cfg.gate}}
    state = dict(execution_input, evaluation={"report": report, "ETag": '"0123456789abcdef0123456789abcdef"'}, gate={"values": gate.merged_entries(report)})
    ctx = asl.context(execution_input, execution_id, state)
    region, account = cfg.aws.region, cfg.aws.account_id
    needs = [(action, "*", {}) for action in iam_actions.LOG_DELIVERY_ACTIONS]  # the state machine's logging
    for name, state in asl.task_states(definition):
        if name in REGISTERING_STATES and not execution_input["Register"]:
            continue
        integration = iam_actions.integration_of(state["Resource"])
        assert integration, f"{name}: no entry in iam_actions.INTEGRATIONS for {state['Resource']}"
        params = asl.resolve(state.get("Parameters", {}), ctx)
        if "ProcessingJobName" in params:
            targets = [f"arn:aws:sagemaker:{region}:{account}:processing-job/{params['ProcessingJobName'].lower()}"]
        elif "TrainingJobName" in params:
            targets = [f"arn:aws:sagemaker:{region}:{account}:training-job/{params['TrainingJobName'].lower()}"]
        elif "Bucket" in params:
            targets = [f"arn:aws:s3:::{params['Bucket']}/{params['Key']}"]
            if cfg.aws.kms_key_id:  # the object was written with the key: reading decrypts it
                needs.append(("kms:Decrypt", _key_resource(cfg), _key_context(cfg)))
            if "CopySource" in params:  # CopyObject reads its source, and encrypts the copy with the key
                needs += [(action, f"arn:aws:s3:::{params['CopySource']}", {}) for action in integration.source_actions]
                if cfg.aws.kms_key_id:
                    needs.append(("kms:GenerateDataKey", _key_resource(cfg), _key_context(cfg)))
        elif "ModelPackageGroupName" in params:
            group = params["ModelPackageGroupName"].lower()
            targets = [f"arn:aws:sagemaker:{region}:{account}:model-package-group/{group}",
                       f"arn:aws:sagemaker:{region}:{account}:model-package/{group}/1"]
        else:
            raise AssertionError(f"{name}: cannot tell what {state['Resource']} acts on")
        actions = list(integration.actions)
        if integration.tags_action and params.get("Tags"):
            actions.append(integration.tags_action)
        needs += [(action, target, {}) for action in actions for target in targets]
        if integration.events_rule:
            rule = f"arn:aws:events:{region}:{account}:rule/{integration.events_rule}"
            needs += [(action, rule, {}) for action in iam_actions.EVENTS_RULE_ACTIONS]
        if integration.passes_role:
            needs.append(("iam:PassRole", params["RoleArn"], {"iam:PassedToService": "sagemaker.amazonaws.com"}))
    return needs


def _key_resource(cfg):
    key = cfg.aws.kms_key_id
    return key if key.startswith("arn:") and ":key/" in key else \
        f"arn:aws:kms:{cfg.aws.region}:{cfg.aws.account_id}:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def _key_context(cfg):
    key = cfg.aws.kms_key_id
    return {"kms:ResourceAliases": [key[key.index("alias/"):]]} if "alias/" in key else {}


@pytest.mark.parametrize("variant", ["example", "everything", "key-arn"])
def test_states_policy_covers_every_task_of_the_definition(configs, variant):
    from mltp import definition

    cfg = configs[variant]
    rendered = definition.build_definition(cfg)
    document = policies.policy(cfg, "states").document()
    needs = []
    for machine, register in ((cfg.name, True), (naming.state_machine_name(cfg, "feature/Ünïcode & more", False), False)):
        for run in ("jenkins-fraud-detection-main-1234", "x" * 80):
            run = naming.run_name(run)
            execution = naming.execution_input(cfg, machine, run, "ab" * 32, register, "c0ffee", "https://j/job/%2F/1/")
            execution_id = f"arn:aws:states:{cfg.aws.region}:{cfg.aws.account_id}:execution:{machine}:{run}"
            needs += _task_needs(cfg, rendered, execution.to_dict(), execution_id)
    assert len(needs) > 20
    gaps = iam_check.missing(document, needs)
    assert not gaps, "the states policy misses: " + "; ".join(gaps)
    # A branch run's artifacts can never be copied into the registry, even were its Register set.
    branch = naming.execution_input(cfg, naming.state_machine_name(cfg, "feature/x", False), "r1", "ab" * 32, True)
    assert not iam_check.allows(document, "s3:GetObject", f"arn:aws:s3:::{branch.ModelArtifactCopySource}")
    assert iam_check.allows(document, "s3:PutObject", f"arn:aws:s3:::{cfg.aws.bucket}/{branch.RegistryModelKey}")


def test_a_missing_permission_is_named(configs):
    """What the coverage tests report when the policy lacks an action."""
    cfg = configs["example"]
    policy = policies.policy(cfg, "states")
    trimmed = {"Version": "2012-10-17",
               "Statement": [s.document() for s in policy.statements if s.sid != "SyncJobRules"]}
    from mltp import definition

    execution = naming.execution_input(cfg, cfg.name, "r1", "ab" * 32, True)
    needs = _task_needs(cfg, definition.build_definition(cfg), execution.to_dict(), "arn:aws:states:x:1:execution:m:r1")
    gaps = iam_check.missing(trimmed, needs)
    assert ("events:PutTargets on arn:aws:events:ap-northeast-2:123456789012:rule/"
            "StepFunctionsGetEventsForSageMakerTrainingJobsRule") in gaps


# --------------------------------------------------------------------------- jenkins: recorded calls


def _conftest():
    return sys.modules.get("conftest") or sys.modules.get("tests.conftest")


def _recorded_calls(tmp_path, modules=None):
    """The recorded calls of these test modules (default: the control-plane ones) in
    this session, or, for the modules that did not run in it, of a run of them in a
    child pytest."""
    conftest = _conftest()
    modules = tuple(modules or conftest.CONTROL_PLANE_MODULES)

    def module(test):
        return test.split("::")[0].rsplit("/", 1)[-1]

    ran = {module(test) for test in conftest.AWS_CALLS}
    calls = {test: entry for test, entry in conftest.AWS_CALLS.items() if module(test) in modules}
    todo = [m for m in modules if m not in ran]
    if todo:
        target = tmp_path / "calls.json"
        env = dict(os.environ, MLTP_RECORD_AWS_CALLS=str(target))
        paths = [str(ROOT / "tests" / "helper" / m) for m in todo]
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        assert target.exists(), done.stdout[-2000:] + done.stderr[-2000:]
        calls.update({test: entry for test, entry in json.loads(target.read_text()).items() if module(test) in modules})
    return calls


def _calls_of(entry, role):
    return [call for call in entry["calls"] if call.get("role", "jenkins") == role]


MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"  # what moto answers to GetCallerIdentity


def _shared_log_group(call):
    """test_deploy gives each test a log group prefix of its own (to count creations)
    in place of log_group.PREFIX; check the call as the real one."""
    from mltp import log_group

    group = call["params"].get("logGroupName") or call["params"].get("logGroupNamePrefix") or ""
    test_prefix = "/aws/vendedlogs/states/mltp-test-"
    if group.startswith(test_prefix):
        rest = group[len(test_prefix):]
        real = log_group.PREFIX + (rest[rest.index("/"):] if "/" in rest else "")
        params = {k: (real if v == group else v) for k, v in call["params"].items()}
        return dict(call, params=params)
    return call


# The recorded calls of a feature built outside config.yaml (`--feature`): each is
# checked against the policy with that feature, and must be refused without it.
FEATURE_OPERATIONS = {
    "prune": {"stepfunctions.ListStateMachines", "stepfunctions.ListExecutions", "stepfunctions.DeleteStateMachine"},
}


def test_jenkins_policy_covers_the_recorded_calls(tmp_path):
    recorded = _recorded_calls(tmp_path)
    gaps, unneeded = {}, {}
    placed = 0
    operations = set()
    for test, entry in recorded.items():
        if not _calls_of(entry, "jenkins"):
            continue
        assert entry["configs"], f"{test}: AWS calls without a config loaded"
        cfgs = [config_mod.parse(text, Path("config.yaml"), Path(".")) for text in entry["configs"]]

        def documents(features=()):
            # moto's caller; `--jenkins-arn` lets preflight simulate the caller itself
            return [policies.policy(cfg, "jenkins", features, identity_arn=MOTO_CALLER).document() for cfg in cfgs]

        for call in _calls_of(entry, "jenkins"):
            call = _shared_log_group(call)
            operation = f"{call['service']}.{call['operation']}"
            operations.add(operation)
            features = sorted(f for f, ops in FEATURE_OPERATIONS.items() if operation in ops)
            region = cfgs[0].aws.region
            needs = iam_check.call_needs(call["service"], call["operation"], call["params"], region, "123456789012")
            placed += 1
            allowed = documents(features)
            for need in needs:
                if not any(iam_check.allows(d, *need) for d in allowed):
                    gaps.setdefault(f"{need[0]} on {need[1]}" + (f" with --feature {features}" if features else ""), test)
            if features and all(any(iam_check.allows(d, *need) for d in documents()) for need in needs):
                unneeded.setdefault(f"{operation} ({features})", test)
    expected = {"s3.HeadObject", "s3.PutObject", "s3.GetObject", "s3.GetBucketLocation", "stepfunctions.CreateStateMachine",
                "stepfunctions.UpdateStateMachine", "stepfunctions.StartExecution", "stepfunctions.DescribeExecution",
                "stepfunctions.GetExecutionHistory", "stepfunctions.StopExecution", "logs.CreateLogGroup",
                "logs.DescribeLogGroups", "sagemaker.CreateModelPackageGroup", "iam.GetRole", "kms.DescribeKey"}
    assert placed > 50 and not expected - operations, f"not recorded: {sorted(expected - operations)}"
    assert not gaps, "the jenkins policy misses: " + "; ".join(f"{k} (in {v})" for k, v in sorted(gaps.items()))
    assert not unneeded, "allowed without its --feature: " + "; ".join(f"{k} (in {v})" for k, v in sorted(unneeded.items()))
    pruned = {"stepfunctions.ListStateMachines", "stepfunctions.DeleteStateMachine", "s3.DeleteObjects"}
    assert not pruned - operations, f"prune's calls not recorded: {sorted(pruned - operations)}"


def test_jenkins_policy_covers_the_features_calls(configs):
    """approval, fetch, trigger, logs and prune are built outside config.yaml: the calls their
    descriptions name, table-driven, so each lands by adding its real calls here."""
    cfg = configs["example"]
    region, account = cfg.aws.region, cfg.aws.account_id
    package = f"arn:aws:sagemaker:{region}:{account}:model-package/fraud-detection/3"
    machine = f"arn:aws:states:{region}:{account}:stateMachine:fraud-detection"
    feature_calls = {
        "approval": [("sagemaker", "ListModelPackages", {"ModelPackageGroupName": "fraud-detection"}),
                     ("sagemaker", "DescribeModelPackage", {"ModelPackageName": package}),
                     ("sagemaker", "UpdateModelPackage", {"ModelPackageArn": package})],
        "fetch": [("sagemaker", "DescribeModelPackage", {"ModelPackageName": package}),
                  ("s3", "GetObject", {"Bucket": "mlops-artifacts",
                                       "Key": "mltp/fraud-detection/registry/r1/model.tar.gz"})],
        "trigger": [("s3", "GetBucketNotificationConfiguration", {"Bucket": "mlops-artifacts"}),
                    ("s3", "PutBucketNotificationConfiguration", {"Bucket": "mlops-artifacts"}),
                    *[("lambda", op, {"FunctionName": "mltp-trigger-fraud-detection"})
                      for op in ("GetFunction", "UpdateFunctionCode", "AddPermission", "RemovePermission", "DeleteFunction")],
                    ("lambda", "CreateFunction", {"FunctionName": "mltp-trigger-fraud-detection",
                                                  "Role": f"arn:aws:iam::{account}:role/mltp-trigger-fraud-detection"})],
        # mltp logs (runlogs.py): the model's group and the jobs' groups, read and exported
        "logs": [("logs", op, {"logGroupName": group})
                 for op in ("CreateExportTask", "FilterLogEvents")
                 for group in ("/aws/vendedlogs/states/mltp/fraud-detection", "/aws/sagemaker/TrainingJobs")]
                + [("logs", "GetLogEvents", {"logGroupName": "/aws/vendedlogs/states/mltp/fraud-detection",
                                             "logStreamName": "states/fraud-detection/2026-11-26/abc"})],
        # mltp resume (resume.py): the newest failed run, and its redrive
        "resume": [("stepfunctions", "ListExecutions", {"stateMachineArn": machine}),
                   ("stepfunctions", "RedriveExecution",
                    {"executionArn": machine.replace(":stateMachine:", ":execution:") + ":r1"})],
        "prune": [("stepfunctions", "ListStateMachines", {}),
                  ("stepfunctions", "ListExecutions", {"stateMachineArn": machine}),
                  ("stepfunctions", "ListExecutions", {"stateMachineArn": f"{machine}--feature-x"}),
                  ("stepfunctions", "DeleteStateMachine", {"stateMachineArn": f"{machine}--feature-x"})],
    }
    for feature, calls in feature_calls.items():
        document = policies.policy(cfg, "jenkins", [feature]).document()
        without = policies.policy(cfg, "jenkins").document()
        needs = [n for service, op, params in calls for n in _feature_needs(service, op, params, region, account)]
        assert not iam_check.missing(document, needs), (feature, iam_check.missing(document, needs))
        if feature in IN_THE_BASE_POLICY:
            assert not iam_check.missing(without, needs), (feature, iam_check.missing(without, needs))
        else:
            assert iam_check.missing(without, needs), f"{feature}: allowed without --feature {feature}"


# Features whose calls the base Jenkins policy holds anyway: `wait` records the
# registered model's SHA-256 with the very UpdateModelPackage approve/reject use,
# after reading the registry copy of model.tar.gz that fetch-model downloads.
IN_THE_BASE_POLICY = {"approval", "fetch"}


def test_prune_never_deletes_the_default_branch_state_machine_nor_another_model(configs):
    cfg = configs["example"]
    document = policies.policy(cfg, "jenkins", ["prune"]).document()
    machines = "arn:aws:states:ap-northeast-2:123456789012:stateMachine:"
    assert iam_check.allows(document, "states:DeleteStateMachine", machines + "fraud-detection--feature-x")
    for other in ("fraud-detection", "fraud-detection-v2", "fraud-detection-v2--feature-x", "other--x"):
        assert not iam_check.allows(document, "states:DeleteStateMachine", machines + other), other
    assert not iam_check.allows(document, "states:ListExecutions", machines + "fraud-detection-v2")


def _feature_needs(service, operation, params, region, account):
    if service == "lambda":
        function = f"arn:aws:lambda:{region}:{account}:function:{params['FunctionName']}"
        needs = [(f"lambda:{operation}", function, {})]
        if "Role" in params:
            needs.append(("iam:PassRole", params["Role"], {"iam:PassedToService": "lambda.amazonaws.com"}))
        return needs
    if service == "sagemaker" and operation == "UpdateModelPackage":
        return [("sagemaker:UpdateModelPackage", params["ModelPackageArn"], {})]
    if service == "logs" and operation in ("PutRetentionPolicy", "CreateExportTask", "FilterLogEvents"):
        return [(f"logs:{operation}", f"arn:aws:logs:{region}:{account}:log-group:{params['logGroupName']}", {})]
    return iam_check.call_needs(service, operation, params, region, account)


# --------------------------------------------------------------------------- trigger

# The handler's calls are recorded while test_trigger.py calls it with S3 events and
# schedules (in-process, against moto): tests/conftest.py records them as the
# trigger role's (ROLE_OF_SOURCE), whether through mltp's clients or the function's own.
TRIGGER_MODULE = "test_trigger.py"


def test_trigger_policy_covers_the_handler_recorded_calls(tmp_path):
    from mltp import trigger
    from mltp.context import make_context

    recorded = _recorded_calls(tmp_path, [TRIGGER_MODULE])
    gaps, operations, placed = {}, set(), 0
    for test, entry in recorded.items():
        calls = _calls_of(entry, "trigger")
        if not calls:
            continue
        assert entry["configs"], f"{test}: AWS calls without a config loaded"
        documents = {}
        for text in entry["configs"]:
            cfg = config_mod.parse(text, Path("config.yaml"), Path("."))
            machine = f"arn:aws:states:{cfg.aws.region}:{cfg.aws.account_id}:stateMachine:{cfg.name}"
            # what `mltp iam-policy --role trigger` prints, and what `mltp trigger install` puts on the role
            documents.setdefault("iam-policy --role trigger", []).append(policies.policy(cfg, "trigger").document())
            documents.setdefault("trigger install", []).append(
                trigger.role_policy(make_context(cfg, run_name="r", env={}), machine))
            region = cfg.aws.region
        for call in calls:
            operations.add(f"{call['service']}.{call['operation']}")
            placed += 1
            for need in iam_check.call_needs(call["service"], call["operation"], call["params"], region, "123456789012"):
                for source, docs in documents.items():
                    if not any(iam_check.allows(d, *need) for d in docs):
                        gaps.setdefault(f"{need[0]} on {need[1]} ({source})", test)
    expected = {"s3.GetObject", "s3.PutObject", "stepfunctions.ListExecutions", "stepfunctions.StartExecution"}
    assert placed > 20 and not expected - operations, f"not recorded: {sorted(expected - operations)}"
    assert not gaps, "the trigger policy misses: " + "; ".join(f"{k} (in {v})" for k, v in sorted(gaps.items()))


def test_trigger_policy_stays_on_the_default_branch_and_the_trigger_state(configs):
    cfg = configs["example"]
    document = policies.policy(cfg, "trigger").document()
    region, account = cfg.aws.region, cfg.aws.account_id
    assert iam_check.allows(document, "s3:PutObject", "arn:aws:s3:::mlops-artifacts/mltp/fraud-detection/trigger/pending.json")
    for key in ("mltp/fraud-detection/code/abc/src/train.py", "mltp/fraud-detection/runs/r1/model/m.tar.gz",
                "mltp/fraud-detection-v2/trigger/pending.json"):
        assert not iam_check.allows(document, "s3:GetObject", f"arn:aws:s3:::mlops-artifacts/{key}"), key
    assert not iam_check.allows(document, "states:StartExecution",
                                f"arn:aws:states:{region}:{account}:stateMachine:fraud-detection--feature")
