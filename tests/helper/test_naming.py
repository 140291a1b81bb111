"""Derived names stay within AWS limits whatever the branch or build tag holds."""

import re
from pathlib import Path

import pytest

from mltp import config as config_mod
from mltp import naming
from mltp.context import is_default_branch, make_context

BASE = Path(__file__).resolve().parents[1] / "fixtures" / "base"
SFN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")

HOSTILE = [
    "feature/x", "feature-x", "FEATURE/X", "$(touch /tmp/pwned)", "`id`", "a" * 300, "ü-ñicode/ブランチ",
    "PR-12", "--", "release/2024.1", "x" * 37 + "/y",
]


@pytest.fixture(scope="module")
def cfg():
    return config_mod.load(BASE)


def long_name_config(cfg):
    from dataclasses import replace

    return replace(cfg, name="m" * 40)


@pytest.mark.parametrize("branch", HOSTILE)
def test_branch_state_machine_names_are_valid(cfg, branch):
    for c in (cfg, long_name_config(cfg)):
        name = naming.state_machine_name(c, branch, is_default=False)
        assert SFN_NAME.match(name), name
        assert name.startswith(c.name + "--")


def test_distinct_branches_get_distinct_state_machines(cfg):
    names = {naming.state_machine_name(cfg, b, False) for b in HOSTILE}
    assert len(names) == len(HOSTILE)


def test_plain_branch_keeps_its_name(cfg):
    assert naming.state_machine_name(cfg, "develop", False) == "fixture-model--develop"
    assert naming.state_machine_name(cfg, "develop", True) == "fixture-model"


@pytest.mark.parametrize("tag", ["jenkins-team-fraud-model-main-42", "jenkins-a b/c%d-7", "j" * 200])
def test_run_and_job_names_are_valid(cfg, tag):
    run = naming.run_name(tag)
    assert SFN_NAME.match(run)
    for role in ("preprocessing", "training", "evaluation"):
        job = naming.job_name(long_name_config(cfg), "m" * 40 + "--" + "b" * 38, run, role)
        assert JOB_NAME.match(job) and len(job) <= 63, job


def test_execution_input_layout(cfg):
    data = naming.execution_input(cfg, "fixture-model", "run-1", "abc123", register=True).to_dict()
    assert data["CodeS3Uri"] == "s3://mlops-artifacts/mltp/fixture-model/code/abc123/src/"
    assert data["TrainDataS3Uri"] == "s3://mlops-artifacts/mltp/fixture-model/runs/run-1/preprocessing/train/"
    assert data["ModelArtifactS3Uri"].endswith(f"runs/run-1/model/{data['TrainingJobName']}/output/model.tar.gz")
    assert data["EvaluationKey"] == "mltp/fixture-model/runs/run-1/evaluation/evaluation.json"
    assert data["Register"] is True


@pytest.mark.parametrize("env,default", [
    ({}, True),
    ({"BRANCH_NAME": "main"}, True),
    ({"BRANCH_NAME": "feature/x"}, False),
    ({"BRANCH_NAME": "trunk", "BRANCH_IS_PRIMARY": "true"}, True),
    ({"BRANCH_NAME": "main", "BRANCH_IS_PRIMARY": "false"}, False),
    ({"BRANCH_NAME": "PR-7", "CHANGE_ID": "7"}, False),
    ({"BRANCH_NAME": "develop", "MLTP_DEFAULT_BRANCH": "develop"}, True),
    ({"BRANCH_NAME": "main", "MLTP_DEFAULT_BRANCH": "develop"}, False),
])
def test_default_branch_detection(env, default):
    assert is_default_branch(env) is default


def test_context_from_jenkins_env(cfg):
    env = {"BRANCH_NAME": "PR-7", "CHANGE_ID": "7", "BUILD_TAG": "jenkins-ml-fraud-PR-7-3",
           "BUILD_URL": "https://ci/job/3/", "GIT_COMMIT": "abc"}
    ctx = make_context(cfg, env=env)
    assert ctx.state_machine == "fixture-model--pr-7-" + ctx.state_machine.rsplit("-", 1)[1]
    assert ctx.run_name == "jenkins-ml-fraud-PR-7-3"
    assert not ctx.register
    assert ctx.git_commit == "abc" and ctx.build_url == "https://ci/job/3/"
    assert ctx.report_dir == cfg.repo / ".mltp" / "runs" / "jenkins-ml-fraud-PR-7-3"


def test_metadata_values_are_safe_for_the_registry(cfg):
    url = "https://ci.example.com/job/fraud/job/feature%252Fx/7/"
    data = naming.execution_input(cfg, "fixture-model", "run-1", "abc", register=True, git_commit="", build_url=url)
    assert data.GitCommit == "unknown"
    assert data.BuildUrl == "https://ci.example.com/job/fraud/job/feature_252Fx/7/"


@pytest.mark.parametrize("branch", HOSTILE)
def test_a_branch_run_writes_under_its_own_prefix_never_the_default_branchs(cfg, branch):
    """Issue 20: branch and pull request runs live under branches/<slug>/runs/<run>/,
    a sibling of the default branch's runs/ and registry/: no branch name or run
    name makes one reach into the other, nor one branch's into another's."""
    machine = naming.state_machine_name(cfg, branch, False)
    root = naming.model_prefix(cfg)
    prefix = naming.run_prefix(cfg, "run-1", machine)
    slug = naming.branch_of(cfg, machine)
    assert prefix == f"{root}branches/{slug}/runs/run-1/" and "/" not in slug and slug not in ("", ".", "..")
    data = naming.execution_input(cfg, machine, "run-1", "abc", register=False)
    for key in ("TrainDataS3Uri", "ValidationDataS3Uri", "TestDataS3Uri", "ModelOutputS3Uri", "ModelArtifactS3Uri",
                "EvaluationOutputS3Uri", "EvaluationS3Uri"):
        assert getattr(data, key).startswith(f"s3://{cfg.aws.bucket}/{prefix}"), key
    assert data.EvaluationKey.startswith(prefix) and data.ModelArtifactCopySource.startswith(f"{cfg.aws.bucket}/{prefix}")
    others = {naming.run_prefix(cfg, "run-1", naming.state_machine_name(cfg, b, False)) for b in HOSTILE}
    assert len(others) == len(HOSTILE)
    assert not any(a != b and b.startswith(a) for a in others for b in others)  # no branch's prefix nests in another's
    for run in ("branches", "run-1", "x" * 80):
        default = naming.run_prefix(cfg, naming.run_name(run), cfg.name)
        assert default.startswith(f"{root}runs/") and not prefix.startswith(default) and not default.startswith(prefix)


def test_registered_artifacts_go_to_the_registry_prefix(cfg):
    data = naming.execution_input(cfg, "fixture-model", "run-1", "abc", register=True)
    assert data.RegistryModelKey == "mltp/fixture-model/registry/run-1/model.tar.gz"
    assert data.RegistryEvaluationKey == "mltp/fixture-model/registry/run-1/evaluation.json"
    assert data.RegistryModelS3Uri == f"s3://mlops-artifacts/{data.RegistryModelKey}"
    assert data.ModelArtifactCopySource == data.ModelArtifactS3Uri[len("s3://"):]
    assert data.EvaluationCopySource == f"{data.EvaluationBucket}/{data.EvaluationKey}"


def test_a_branch_state_machines_jobs_run_as_the_branch_role(cfg):
    from dataclasses import replace

    from mltp import definition

    assert naming.job_role_arn(cfg, "fixture-model--dev") == cfg.aws.sagemaker_role_arn  # no branch role set
    assert naming.definition_config(cfg, "fixture-model--dev") is cfg
    branch_role = cfg.aws.sagemaker_role_arn.rsplit("/", 1)[0] + "/SageMakerBranches"
    two = replace(cfg, aws=replace(cfg.aws, branch_sagemaker_role_arn=branch_role))
    assert naming.job_role_arn(two, "fixture-model") == cfg.aws.sagemaker_role_arn
    assert naming.job_role_arn(two, "fixture-model--dev") == branch_role
    states = definition.build_definition(naming.definition_config(two, "fixture-model--dev"))["States"]
    roles = {states[name]["Parameters"]["RoleArn"] for name in ("Preprocessing", "Training", "Evaluation")}
    assert roles == {branch_role}
    default = definition.build_definition(naming.definition_config(two, "fixture-model"))["States"]
    assert default["Training"]["Parameters"]["RoleArn"] == cfg.aws.sagemaker_role_arn


def test_an_admin_pins_the_branch_role_over_config_yaml(cfg):
    """MLTP_BRANCH_SAGEMAKER_ROLE_ARN (set by an admin where a pull request cannot) wins
    over whatever the pull request's config.yaml says, or leaves out."""
    from mltp.errors import InvalidInput

    pinned = cfg.aws.sagemaker_role_arn.rsplit("/", 1)[0] + "/SageMakerBranches"
    env = {"BRANCH_NAME": "PR-7", "CHANGE_ID": "7", "MLTP_BRANCH_SAGEMAKER_ROLE_ARN": pinned}
    ctx = make_context(cfg, env=env)
    assert ctx.config.aws.branch_sagemaker_role_arn == pinned
    assert naming.job_role_arn(ctx.config, ctx.state_machine) == pinned
    assert make_context(cfg, env={"BRANCH_NAME": "PR-7", "CHANGE_ID": "7"}).config is cfg
    for bad in ("SageMakerBranches", "arn:aws:iam::999999999999:role/SageMakerBranches"):
        with pytest.raises(InvalidInput, match="MLTP_BRANCH_SAGEMAKER_ROLE_ARN=.*must be an IAM role ARN in the account"):
            make_context(cfg, env=dict(env, MLTP_BRANCH_SAGEMAKER_ROLE_ARN=bad))


def test_run_artifacts_are_where_the_execution_input_puts_them(cfg):
    data = naming.execution_input(cfg, "fixture-model--dev", "run-9", "abc", register=False)
    artifacts = naming.run_artifacts(cfg, "fixture-model--dev", "run-9")
    assert artifacts.model == data.ModelArtifactS3Uri
    assert artifacts.evaluation == data.EvaluationS3Uri == f"s3://{data.EvaluationBucket}/{data.EvaluationKey}"
