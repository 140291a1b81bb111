"""`mltp preflight` against moto over HTTP: one line per check, exit 5 when one fails.

moto 5.2 implements IAM roles, STS, S3, KMS and SageMaker's model package groups,
but not Service Quotas' ListServiceQuotas for SageMaker nor IAM's policy simulator:
preflight then says the check was skipped. Those answers are judged by pure
functions, tested here over responses in the shape AWS documents; one test also
teaches moto's service-quotas endpoint a recorded ListServiceQuotas answer, so the
whole path (request, HTTP, parsing, the failed line) runs for a zero quota.
"""

import json
import uuid
from pathlib import Path

import boto3
import pytest
from click.testing import CliRunner

from mltp import config as config_mod
from mltp import policies, preflight
from mltp.cli import main

REGION = "ap-northeast-2"
ACCOUNT = "123456789012"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]})


class Account:
    """A model whose bucket and roles exist in moto, each test with its own names."""

    def __init__(self, repo: Path, endpoint: str):
        self.repo, self.endpoint = repo, endpoint
        self.bucket = unique("preflight")
        self.states_role, self.sagemaker_role = unique("states"), unique("sagemaker")
        text = (repo / "config.yaml").read_text()
        text = text.replace("bucket: mlops-artifacts", f"bucket: {self.bucket}")
        text = text.replace("role/StepFunctionsExecution", f"role/{self.states_role}")
        text = text.replace("role/SageMakerExecution", f"role/{self.sagemaker_role}")
        (repo / "config.yaml").write_text(text)

    def client(self, service: str, region: str = REGION):
        return boto3.client(service, region_name=region, endpoint_url=self.endpoint)

    def create_bucket(self, region: str = REGION) -> None:
        self.client("s3", region).create_bucket(Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": region})

    def create_role(self, name: str, service: str) -> None:
        self.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust(service))

    def ready(self) -> "Account":
        self.create_bucket()
        self.create_role(self.states_role, "states.amazonaws.com")
        self.create_role(self.sagemaker_role, "sagemaker.amazonaws.com")
        return self

    def set(self, old: str, new: str) -> None:
        path = self.repo / "config.yaml"
        path.write_text(path.read_text().replace(old, new, 1))

    def preflight(self, *args, env=None):
        return CliRunner().invoke(main, ["preflight", str(self.repo), *args], env=env)


@pytest.fixture
def account(example_repo, aws_env) -> Account:
    return Account(example_repo, aws_env)


def failed_lines(result) -> list:
    return [line for line in result.output.splitlines() if line.startswith("preflight: failed:")]


def test_a_ready_account_passes_and_says_what_it_skipped(account):
    account.ready()
    # A group of its own: with parallel workers another test may have registered fraud-detection in this moto.
    model = unique("ready")
    account.set("model_package_group: fraud-detection", f"model_package_group: {model}")
    result = account.preflight()
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"preflight: ok: bucket {account.bucket} exists in {REGION}, owned by account {ACCOUNT}" in out
    assert f"preflight: ok: role {account.states_role} exists and trusts states.amazonaws.com" in out
    assert f"preflight: ok: role {account.sagemaker_role} exists and trusts sagemaker.amazonaws.com" in out
    assert (f"preflight: skipped: SageMaker instance quotas in {REGION}: "
            "the endpoint does not implement servicequotas:ListServiceQuotas") in out
    assert (f"preflight: skipped: whether this identity may pass role {account.states_role}: "
            "the endpoint does not implement iam:SimulatePrincipalPolicy") in out
    assert f"model package group {model} does not exist yet; the first default-branch deploy creates it" in out


def test_missing_role_is_one_line_with_the_policy_command(account, tmp_path):
    account.create_bucket()
    account.create_role(account.sagemaker_role, "sagemaker.amazonaws.com")
    error_file = tmp_path / "error.txt"
    result = account.preflight(env={"MLTP_ERROR_FILE": str(error_file)})
    assert result.exit_code == 5, result.output
    (line,) = failed_lines(result)
    assert line == (f"preflight: failed: role {account.states_role} does not exist: create it with "
                    "`mltp iam-policy --role states --trust` as trust policy and `mltp iam-policy --role states` "
                    "as permissions, or fix aws.states_role_arn (config.yaml:10)".replace(
                        "config.yaml:10", f"{config_mod.display(account.repo / 'config.yaml')}:10"))
    assert error_file.read_text().startswith(f"role {account.states_role} does not exist")
    assert "Traceback" not in result.output


def test_bucket_in_another_region_is_one_line(account):
    account.create_bucket(region="us-west-2")
    account.create_role(account.states_role, "states.amazonaws.com")
    account.create_role(account.sagemaker_role, "sagemaker.amazonaws.com")
    result = account.preflight()
    assert result.exit_code == 5, result.output
    (line,) = failed_lines(result)
    assert line.startswith(f"preflight: failed: bucket {account.bucket} is in us-west-2, not in aws.region {REGION} (")
    assert line.endswith(f"create one in {REGION} or fix aws.region")


def test_missing_bucket_and_untrusting_role(account):
    account.create_role(account.states_role, "ec2.amazonaws.com")
    account.create_role(account.sagemaker_role, "sagemaker.amazonaws.com")
    result = account.preflight()
    assert result.exit_code == 5
    lines = failed_lines(result)
    assert len(lines) == 2, result.output
    assert lines[0].startswith(f"preflight: failed: bucket {account.bucket} does not exist: create it in {REGION}")
    assert lines[1] == (f"preflight: failed: role {account.states_role} does not trust states.amazonaws.com: "
                        "set its trust policy to `mltp iam-policy --role states --trust`")


# A ListServiceQuotas answer in the shape the Service Quotas API reference documents.
RECORDED_QUOTAS = {"Quotas": [
    {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": "L-E7898792",
     "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/L-E7898792",
     "QuotaName": "ml.m5.xlarge for training job usage", "Value": 0.0, "Unit": "None", "Adjustable": True,
     "GlobalQuota": False},
    {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": "L-0307F515",
     "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/L-0307F515",
     "QuotaName": "ml.m5.xlarge for processing job usage", "Value": 4.0, "Unit": "None", "Adjustable": True,
     "GlobalQuota": False},
    {"ServiceCode": "sagemaker", "ServiceName": "Amazon SageMaker", "QuotaCode": "L-1A9B4B3B",
     "QuotaArn": f"arn:aws:servicequotas:{REGION}:{ACCOUNT}:sagemaker/L-1A9B4B3B",
     "QuotaName": "ml.m5.large for processing job usage", "Value": 4.0, "Unit": "None", "Adjustable": True,
     "GlobalQuota": False},
]}


@pytest.fixture
def moto_knows_quotas(monkeypatch):
    """moto's service-quotas endpoint lacks ListServiceQuotas; the server runs in this
    process, so it can answer with the recorded response (over HTTP, parsed by botocore)."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    def list_service_quotas(self):
        assert json.loads(self.body)["ServiceCode"] == "sagemaker"
        return json.dumps(RECORDED_QUOTAS)

    monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", list_service_quotas, raising=False)


def test_zero_quota_is_one_line(account, moto_knows_quotas):
    account.ready()
    result = account.preflight()
    assert result.exit_code == 5, result.output
    (line,) = failed_lines(result)
    where = f"{config_mod.display(account.repo / 'config.yaml')}:"
    assert line.startswith(f"preflight: failed: SageMaker quota 'ml.m5.xlarge for training job usage' is 0 in {REGION}, "
                           "a run needs 1: request an increase in Service Quotas, or change steps.training.instance_type (" + where)
    assert "preflight: ok: SageMaker quota 'ml.m5.xlarge for processing job usage' is 4 (a run needs 1)" in result.output


def test_quota_without_applied_value_falls_back_to_defaults(account, monkeypatch):
    """ListServiceQuotas lists only quotas with an applied value; the rest come from
    ListAWSDefaultServiceQuotas, which moto answers for 'vpc' only (NoSuchResource):
    that quota is then skipped, the listed ones still judged."""
    from moto.servicequotas.responses import ServiceQuotasResponse

    account.ready()
    applied = {"Quotas": RECORDED_QUOTAS["Quotas"][1:]}
    monkeypatch.setattr(ServiceQuotasResponse, "list_service_quotas", lambda self: json.dumps(applied), raising=False)
    result = account.preflight()
    assert result.exit_code == 0, result.output
    (line,) = [l for l in result.output.splitlines() if "ml.m5.xlarge for training job usage" in l]
    assert line.startswith("preflight: skipped: SageMaker quota 'ml.m5.xlarge for training job usage': no applied value, and ")
    assert "preflight: ok: SageMaker quota 'ml.m5.large for processing job usage' is 4 (a run needs 1)" in result.output


def test_kms_key_is_checked(account):
    account.ready()
    key = account.client("kms").create_key()["KeyMetadata"]["KeyId"]
    account.set("  tags:", f"  kms_key_id: {key}\n  tags:")
    result = account.preflight()
    assert result.exit_code == 0, result.output
    assert f"preflight: ok: KMS key {key} is enabled" in result.output

    account.client("kms").disable_key(KeyId=key)
    result = account.preflight()
    assert result.exit_code == 5
    (line,) = failed_lines(result)
    assert line.startswith(f"preflight: failed: KMS key {key} is Disabled for ENCRYPT_DECRYPT: it must be an enabled")


def test_existing_model_package_group(account):
    account.ready()
    group = unique("group")
    account.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    account.set("model_package_group: fraud-detection", f"model_package_group: {group}")
    result = account.preflight()
    assert result.exit_code == 0, result.output
    assert f"preflight: ok: model package group {group} exists" in result.output


def test_invalid_config_is_2_and_calls_nothing(account):
    account.set("version: 1", "version: 2")
    result = account.preflight("--endpoint-url", "http://127.0.0.1:9")  # nothing listens there
    assert result.exit_code == 2
    assert "version" in result.output


def test_sync_runs_preflight_first_unless_told_not_to(account, monkeypatch):
    monkeypatch.delenv("MLTP_NO_PREFLIGHT")
    account.create_bucket()
    result = CliRunner().invoke(main, ["sync", str(account.repo)])
    assert result.exit_code == 5, result.output
    assert f"preflight: failed: role {account.states_role} does not exist" in result.output
    assert "sync:" not in result.output
    result = CliRunner().invoke(main, ["sync", str(account.repo), "--no-preflight"])
    assert result.exit_code == 0, result.output
    assert "preflight:" not in result.output


# --------------------------------------------------------------------------- answers AWS documents, judged


def warning_lines(result) -> list:
    return [line for line in result.output.splitlines() if line.startswith("preflight: warning:")]


def test_a_branch_build_without_a_branch_role_is_warned_once(account):
    """Issue 20: what a pull request's jobs can reach is said, not failed."""
    account.ready()
    default = account.preflight(env={"BRANCH_NAME": "main"})
    assert default.exit_code == 0 and warning_lines(default) == [], default.output
    branch = account.preflight(env={"BRANCH_NAME": "PR-7", "CHANGE_ID": "7"})
    assert branch.exit_code == 0, branch.output
    (line,) = warning_lines(branch)
    assert f"jobs run as {account.sagemaker_role}, the default branch's role" in line
    assert "read and overwrite the default branch's runs (runs/*)" in line and "aws.branch_sagemaker_role_arn" in line


def test_a_branch_role_is_checked_and_one_equal_to_the_default_is_warned(account):
    account.ready()
    branch_role = unique("branches")
    account.create_role(branch_role, "sagemaker.amazonaws.com")
    account.set("  states_role_arn:", f"  branch_sagemaker_role_arn: arn:aws:iam::{ACCOUNT}:role/{branch_role}\n"
                                      "  states_role_arn:")
    result = account.preflight(env={"BRANCH_NAME": "PR-7", "CHANGE_ID": "7"})
    assert result.exit_code == 0 and warning_lines(result) == [], result.output
    assert f"preflight: ok: role {branch_role} exists and trusts sagemaker.amazonaws.com" in result.output
    assert f"whether role {account.states_role} may pass role {branch_role}" in result.output
    account.set(f"role/{branch_role}", f"role/{account.sagemaker_role}")
    same = account.preflight(env={"BRANCH_NAME": "PR-7", "CHANGE_ID": "7"})
    (line,) = warning_lines(same)
    assert "aws.branch_sagemaker_role_arn is aws.sagemaker_role_arn (" in line and "config.yaml:" in line


def test_a_job_role_broader_than_its_policy_is_warned():
    """Where the simulator answers, a job role that may write registry/ (or, for the
    branch role, the default branch's runs) is named."""
    class Allowing(preflight.Preflight):
        def _simulate(self, source, requests):
            return [], None  # IAM's simulator allows everything asked

    cfg = config_mod.load(Path(__file__).resolve().parents[2] / "examples" / "fraud-detection")
    checks = Allowing(cfg, clients=None, branch_build=False)
    checks.role_docs = {"sagemaker": {}}
    checks._reach()
    assert [c.line() for c in checks.checks] == [
        "warning: role SageMakerExecution may write the registry (registry/*), which only the states role may write: "
        "its policy is broader than `mltp iam-policy --role sagemaker`"]


def test_trust_policy_as_iam_returns_it_url_encoded():
    doc = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal" \
          "%22%3A%7B%22Service%22%3A%5B%22states.amazonaws.com%22%5D%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D"
    assert preflight.trust_problem(doc, "states.amazonaws.com") is None
    assert preflight.trust_problem(doc, "sagemaker.amazonaws.com") == "does not trust sagemaker.amazonaws.com"
    denied = {"Statement": {"Effect": "Deny", "Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}}
    assert preflight.trust_problem(denied, "states.amazonaws.com")


def test_quotas_from_a_recorded_answer(example_repo):
    cfg = config_mod.load(example_repo)
    checks = preflight.quota_problems(cfg, RECORDED_QUOTAS["Quotas"])
    status = {c.text.split("'")[1]: c.status for c in checks}
    assert status == {"ml.m5.xlarge for training job usage": "failed",
                      "ml.m5.xlarge for processing job usage": "ok",
                      "ml.m5.large for processing job usage": "ok"}
    missing = preflight.quota_problems(cfg, RECORDED_QUOTAS["Quotas"][:1])
    assert any("no SageMaker quota 'ml.m5.large for processing job usage'" in c.text and c.status == "failed"
               for c in missing)
    unknown = preflight.quota_problems(cfg, RECORDED_QUOTAS["Quotas"][:1], defaults_unknown="the endpoint does not implement it")
    assert [c.status for c in unknown if "ml.m5.large" in c.text] == ["skipped"]


def test_instance_count_above_the_quota(example_repo):
    text = (example_repo / "config.yaml").read_text().replace(
        "    instance_type: ml.m5.xlarge\n    max_runtime_minutes: 60", "    instance_type: ml.m5.xlarge\n    instance_count: 6\n    max_runtime_minutes: 60")
    (example_repo / "config.yaml").write_text(text)
    cfg = config_mod.load(example_repo)
    quotas = [dict(q, Value=4.0) for q in RECORDED_QUOTAS["Quotas"]]
    (failed,) = [c for c in preflight.quota_problems(cfg, quotas) if c.status == "failed"]
    assert "'ml.m5.xlarge for training job usage' is 4" in failed.text and "a run needs 6" in failed.text


# EvaluationResults as SimulatePrincipalPolicy documents them.
RECORDED_SIMULATION = {"EvaluationResults": [
    {"EvalActionName": "sagemaker:CreateTrainingJob",
     "EvalResourceName": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/fraud-detection-train-mltp-preflight",
     "EvalDecision": "allowed", "MatchedStatements": [{"SourcePolicyId": "mltp"}], "MissingContextValues": []},
    {"EvalActionName": "events:PutTargets",
     "EvalResourceName": f"arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule",
     "EvalDecision": "implicitDeny", "MatchedStatements": [], "MissingContextValues": []},
], "IsTruncated": False}


def test_simulation_names_what_a_role_lacks():
    denied = preflight.simulation_problems("states", "role", RECORDED_SIMULATION["EvaluationResults"])
    assert denied == [f"events:PutTargets on arn:aws:events:{REGION}:{ACCOUNT}:rule/StepFunctionsGetEventsForSageMakerTrainingJobsRule"]


def test_simulation_requests_cover_the_generated_policy(example_repo):
    cfg = config_mod.load(example_repo)
    policy = policies.policy(cfg, "states")
    requests = preflight.simulation_requests(policy)
    assert len(requests) == len(policy.statements)
    passing = [r for r in requests if r["ActionNames"] == ["iam:PassRole"]][0]
    assert passing["ResourceArns"] == [cfg.aws.sagemaker_role_arn]
    assert passing["ContextEntries"] == [{"ContextKeyName": "iam:PassedToService",
                                          "ContextKeyValues": ["sagemaker.amazonaws.com"], "ContextKeyType": "string"}]
    assert all("*" not in arn or arn == "*" for r in requests for arn in r["ResourceArns"])


def test_caller_of_an_assumed_role_is_simulated_as_the_role():
    assert preflight.caller_policy_source("arn:aws:sts::123456789012:assumed-role/jenkins-agent/i-0abc") == \
        "arn:aws:iam::123456789012:role/jenkins-agent"
    assert preflight.caller_policy_source("arn:aws:iam::123456789012:user/ci") == "arn:aws:iam::123456789012:user/ci"


# --------------------------------------------------------------------------- once per change (preflight_cache.py)


def _iam_calls(before: int) -> list:
    """The IAM calls the helper made in this test since `before` calls were recorded (tests/conftest.py)."""
    import sys

    conftest = sys.modules.get("conftest") or sys.modules.get("tests.conftest")
    calls = next(entry["calls"] for test, entry in conftest.AWS_CALLS.items() if test == conftest._CURRENT["test"])
    return [c["operation"] for c in calls[before:] if c["service"] == "iam"]


def _recorded() -> int:
    import sys

    conftest = sys.modules.get("conftest") or sys.modules.get("tests.conftest")
    return len(conftest.AWS_CALLS[conftest._CURRENT["test"]]["calls"])


def preflight_lines(result) -> list:
    return [line for line in result.output.splitlines() if line.startswith("preflight:")]


def test_a_passed_preflight_is_skipped_in_one_line_until_the_key_changes(account, monkeypatch):
    monkeypatch.delenv("MLTP_NO_PREFLIGHT")
    account.ready()
    first = CliRunner().invoke(main, ["sync", str(account.repo)])
    assert first.exit_code == 0, first.output
    assert len(preflight_lines(first)) > 5 and "GetRole" in _iam_calls(0)

    before = _recorded()
    second = CliRunner().invoke(main, ["sync", str(account.repo)])
    assert second.exit_code == 0, second.output
    (line,) = preflight_lines(second)
    assert line.startswith("preflight: skipped: passed ") and "(--preflight always runs it)" in line, line
    assert _iam_calls(before) == []  # no IAM control-plane call at all

    forced = CliRunner().invoke(main, ["sync", str(account.repo), "--preflight", "always"])
    assert forced.exit_code == 0 and len(preflight_lines(forced)) > 5, forced.output

    account.set("instance_type: ml.m5.xlarge", "instance_type: ml.m5.2xlarge")  # the config changed: asked again
    changed = CliRunner().invoke(main, ["sync", str(account.repo)])
    assert changed.exit_code == 0 and len(preflight_lines(changed)) > 5, changed.output

    aged = CliRunner().invoke(main, ["sync", str(account.repo)], env={"MLTP_PREFLIGHT_MAX_AGE": "0"})
    assert aged.exit_code == 0 and len(preflight_lines(aged)) > 5, aged.output

    never = CliRunner().invoke(main, ["sync", str(account.repo)], env={"MLTP_PREFLIGHT": "never"})
    assert never.exit_code == 0 and preflight_lines(never) == [], never.output


def test_a_bad_max_age_is_one_line_and_exit_2(account, monkeypatch):
    monkeypatch.delenv("MLTP_NO_PREFLIGHT")
    account.ready()
    before = _recorded()
    result = CliRunner().invoke(main, ["sync", str(account.repo)], env={"MLTP_PREFLIGHT_MAX_AGE": "a day"})
    assert result.exit_code == 2, result.output
    assert _recorded() == before  # nothing sent to AWS
    assert "MLTP_PREFLIGHT_MAX_AGE='a day': must be a number of hours" in result.output
    assert "Traceback" not in result.output and "sync:" not in result.output


def test_a_role_removed_after_a_pass_is_found_by_always_and_the_pass_forgotten(account, monkeypatch):
    monkeypatch.delenv("MLTP_NO_PREFLIGHT")
    account.ready()
    assert CliRunner().invoke(main, ["sync", str(account.repo)]).exit_code == 0
    account.client("iam").delete_role(RoleName=account.states_role)
    failed = CliRunner().invoke(main, ["sync", str(account.repo), "--preflight", "always"])
    assert failed.exit_code == 5 and f"role {account.states_role} does not exist" in failed.output
    again = CliRunner().invoke(main, ["sync", str(account.repo)])  # the failure dropped the remembered pass
    assert again.exit_code == 5 and f"role {account.states_role} does not exist" in again.output


def test_a_state_machine_created_again_runs_the_preflight_again(account, monkeypatch):
    monkeypatch.delenv("MLTP_NO_PREFLIGHT")
    account.ready()
    first = CliRunner().invoke(main, ["publish", str(account.repo)])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(main, ["publish", str(account.repo)])
    assert second.exit_code == 0 and "deploy: unchanged" in second.output, second.output
    assert [line for line in preflight_lines(second) if not line.startswith("preflight: skipped: passed")] == []
    import re

    arn = re.search(r"deploy: unchanged (\S+)", second.output).group(1)
    account.client("stepfunctions").delete_state_machine(stateMachineArn=arn)  # as prune, or a person, would
    third = CliRunner().invoke(main, ["publish", str(account.repo)])
    assert third.exit_code == 0, third.output
    assert "preflight: the state machine was created: running it again" in third.output
    assert any(line.startswith("preflight: ok: role") for line in preflight_lines(third)), third.output


def test_a_failure_the_preflight_checks_for_forgets_the_pass(account, monkeypatch):
    from mltp import invocation, preflight_cache
    from mltp.aws import Clients
    from mltp.commands import preflight as preflight_cmd
    from mltp.errors import AwsRefused, RunFailed

    account.ready()
    inv = invocation.load(account.repo, echo=lambda line: None)
    clients = Clients(REGION, account.endpoint)
    preflight_cmd.preflight(inv, clients)
    key = preflight_cmd._key(inv, clients)
    assert preflight_cache.passed_ago(key) is not None
    with pytest.raises(RunFailed):
        with preflight_cmd.forgetting_on_failure(inv, clients):
            raise RunFailed("metric gate failed: auc 0.7 < 0.8")
    assert preflight_cache.passed_ago(key) is not None  # not one the preflight checks for
    with pytest.raises(AwsRefused):
        with preflight_cmd.forgetting_on_failure(inv, clients):
            raise AwsRefused("AWS refused StartExecution: AccessDeniedException: not authorized")
    assert preflight_cache.passed_ago(key) is None
