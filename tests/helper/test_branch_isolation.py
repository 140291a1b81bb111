"""Issue 20, H2: a branch's or pull request's jobs must not reach what the default
branch registered. moto enforces IAM here with exactly the policies
`mltp iam-policy --role ROLE` prints, each on a role of its own; the calls are the
ones a job's script (or the state machine) would make with that role's credentials.

Before the registry copy, a registered version named its run's own
`runs/<run>/model/.../model.tar.gz`, which the SageMaker role may write, and a pull
request's jobs ran as that role: its preprocessing script could overwrite the
registered model (a pickle: code in the serving container) and a running default
run's evaluation.json. `test_h2_...` replays that write and shows where it still
lands and where it no longer can.

moto checks an action against a statement's Resource but not its Condition, so what
the `s3:prefix` conditions allow to be listed is checked with iam_check instead.
"""

import hashlib
import json
import uuid
from pathlib import Path

import boto3
import botocore.exceptions
import pytest
import requests
from click.testing import CliRunner

import iam_check
from mltp import naming, registry
from mltp.aws import Clients
from mltp.cli import main
from variants import config_variant

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"
REGION = "ap-northeast-2"
ACCOUNT = "123456789012"
BRANCH_ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerBranches"
RUN = "jenkins-fraud-detection-main-7"


def _with_branch_role(data):
    data["aws"]["branch_sagemaker_role_arn"] = BRANCH_ROLE


def printed_policy(repo, role):
    """What `mltp iam-policy REPO --role ROLE` prints, parsed."""
    result = CliRunner().invoke(main, ["iam-policy", str(repo), "--role", role])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


class Enforcing:
    """moto with IAM enforced: an administrator for the setup, and one role per
    printed policy, whose credentials the test acts with."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.tag = uuid.uuid4().hex[:8]  # the session's emulator is shared: names of our own
        admin = f"mltp-h2-admin-{self.tag}"
        self.iam = boto3.client("iam", region_name=REGION, endpoint_url=endpoint)
        self.iam.create_user(UserName=admin)  # before IAM is enforced (the fixture)
        self.iam.put_user_policy(UserName=admin, PolicyName="all", PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
        key = self.iam.create_access_key(UserName=admin)["AccessKey"]
        self.admin = boto3.Session(aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
                                   region_name=REGION)
        self.admin_arn = f"arn:aws:iam::{ACCOUNT}:user/{admin}"
        self.iam = self.admin.client("iam", endpoint_url=endpoint)
        self.count = 0

    def role(self, document) -> boto3.Session:
        """A role holding exactly `document`, assumed. (Its trust names the test's
        administrator: moto cannot act as the SageMaker service.)"""
        self.count += 1
        name = f"mltp-h2-role-{self.tag}-{self.count}"
        trust = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": self.admin_arn}, "Action": "sts:AssumeRole"}]}
        self.iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
        self.iam.put_role_policy(RoleName=name, PolicyName="mltp", PolicyDocument=json.dumps(document))
        return name

    def assume(self, name) -> boto3.Session:
        sts = self.admin.client("sts", endpoint_url=self.endpoint)
        creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{name}", RoleSessionName="job")["Credentials"]
        return boto3.Session(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
                             aws_session_token=creds["SessionToken"], region_name=REGION)

    def s3(self, session):
        return session.client("s3", endpoint_url=self.endpoint)


@pytest.fixture
def enforcing(aws_env):
    world = Enforcing(aws_env)
    s3 = world.admin.client("s3", endpoint_url=aws_env)
    try:
        s3.create_bucket(Bucket="mlops-artifacts", CreateBucketConfiguration={"LocationConstraint": REGION})
    except botocore.exceptions.ClientError:
        pass  # the session's emulator has it already
    requests.post(f"{aws_env}/moto-api/reset-auth", data=b"0", timeout=10)  # from now on, every call is checked
    try:
        yield world
    finally:
        requests.post(f"{aws_env}/moto-api/reset-auth", data=b"inf", timeout=10)


def _refused(call, **params):
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        call(**params)
    assert caught.value.response["Error"]["Code"] == "AccessDenied", caught.value.response


def _register_default_run(world, cfg, states, default_jobs):
    """A default-branch run as it happens on AWS: its training job (the default role)
    writes model.tar.gz and evaluation.json under runs/<run>/; the state machine (the
    states role) copies both to registry/<run>/ and registers the copies."""
    data = naming.execution_input(cfg, cfg.name, RUN, "ab" * 32, True)
    bucket = cfg.aws.bucket
    model_key = data.ModelArtifactCopySource.split("/", 1)[1]
    default_jobs.put_object(Bucket=bucket, Key=model_key, Body=b"the trained model")
    default_jobs.put_object(Bucket=bucket, Key=data.EvaluationKey, Body=b'{"metrics": {"auc": {"value": 0.95}}}')
    for source, key in ((data.ModelArtifactCopySource, data.RegistryModelKey),
                        (data.EvaluationCopySource, data.RegistryEvaluationKey)):
        copied = states.copy_object(Bucket=bucket, Key=key, CopySource=source)
    return data, model_key, copied


def test_h2_a_pull_request_job_cannot_reach_what_the_default_branch_registered(enforcing, tmp_path):
    world = enforcing
    cfg = config_variant(tmp_path, EXAMPLE, _with_branch_role, "two-roles")
    bucket = cfg.aws.bucket
    default_policy = printed_policy(cfg.repo, "sagemaker")
    branch_policy = printed_policy(cfg.repo, "branch-sagemaker")
    default_jobs = world.s3(world.assume(world.role(default_policy)))
    branch_jobs = world.s3(world.assume(world.role(branch_policy)))
    states = world.s3(world.assume(world.role(printed_policy(cfg.repo, "states"))))
    data, model_key, _ = _register_default_run(world, cfg, states, default_jobs)
    assert data.RegistryModelS3Uri.endswith(f"/registry/{RUN}/model.tar.gz")

    # The pull request's preprocessing job, as the branch role: the default run's
    # model and evaluation.json, and the registered copies, are out of its reach.
    for key in (model_key, data.EvaluationKey, data.RegistryModelKey, data.RegistryEvaluationKey):
        _refused(branch_jobs.put_object, Bucket=bucket, Key=key, Body=b"a pickle that runs code")
        _refused(branch_jobs.get_object, Bucket=bucket, Key=key)
    # ... and its own run works as before.
    branch_machine = naming.state_machine_name(cfg, "PR-42", False)
    own = naming.execution_input(cfg, branch_machine, "jenkins-fraud-detection-PR-42-1", "cd" * 32, False)
    assert "/branches/pr-42" in own.TrainDataS3Uri
    own_key = own.TrainDataS3Uri.split("/", 3)[3] + "train.csv"
    branch_jobs.put_object(Bucket=bucket, Key=own_key, Body=b"x\n1\n")
    assert branch_jobs.get_object(Bucket=bucket, Key=own_key)["Body"].read() == b"x\n1\n"
    code = naming.code_prefix(cfg, "cd" * 32, branch_machine) + "src/train.py"
    _refused(branch_jobs.put_object, Bucket=bucket, Key=code, Body=b"")  # code stays read-only
    # Listing: only the branches' own prefixes (moto does not evaluate s3:prefix).
    root = naming.model_prefix(cfg)
    bucket_arn = f"arn:aws:s3:::{bucket}"
    for prefix, allowed in ((f"{root}runs/", False), (f"{root}registry/", False), (f"{root}", False),
                            (f"{root}branches/pr-42/runs/", True)):
        assert iam_check.allows(branch_policy, "s3:ListBucket", bucket_arn, {"s3:prefix": prefix}) is allowed, prefix

    # No job role writes the registry, the default branch's neither.
    _refused(default_jobs.put_object, Bucket=bucket, Key=data.RegistryModelKey, Body=b"")
    # With a branch role, the default role no longer writes the branches' runs.
    _refused(default_jobs.put_object, Bucket=bucket, Key=own_key, Body=b"")

    # wait hashes the copy while it still has the copy's ETag: the recorded SHA-256
    # is the trained model's.
    head = world.admin.client("s3", endpoint_url=world.endpoint).head_object(Bucket=bucket, Key=data.RegistryModelKey)
    copy = registry.ModelCopy(data.RegistryModelS3Uri, head["ETag"])
    clients = Clients(REGION, world.endpoint, session=world.admin)  # the Jenkins side, with its own credentials
    assert registry.sha256_of_s3(clients, copy.uri, copy.etag) == hashlib.sha256(b"the trained model").hexdigest()


def test_h2_without_a_branch_role_the_registered_version_still_holds(enforcing, tmp_path):
    """No aws.branch_sagemaker_role_arn: a pull request's jobs run as the default role
    and can still rewrite the default branch's runs/ (what H2 did, replayed here; the
    preflight warns about it, docs/trust.md), but the version names the registry copy,
    which that role cannot write."""
    world = enforcing
    cfg = config_variant(tmp_path, EXAMPLE, None, "one-role")
    bucket = cfg.aws.bucket
    shared = world.s3(world.assume(world.role(printed_policy(cfg.repo, "sagemaker"))))
    states = world.s3(world.assume(world.role(printed_policy(cfg.repo, "states"))))
    data, model_key, _ = _register_default_run(world, cfg, states, shared)
    # H2 as it was: the run's own model.tar.gz, which versions used to name, is overwritten.
    shared.put_object(Bucket=bucket, Key=model_key, Body=b"a pickle that runs code")
    # The registered copy is not.
    _refused(shared.put_object, Bucket=bucket, Key=data.RegistryModelKey, Body=b"a pickle that runs code")
    _refused(shared.put_object, Bucket=bucket, Key=data.RegistryEvaluationKey, Body=b"{}")
    admin = world.admin.client("s3", endpoint_url=world.endpoint)
    assert admin.get_object(Bucket=bucket, Key=data.RegistryModelKey)["Body"].read() == b"the trained model"
    # The states role copies only out of the default branch's runs, never a branch's.
    branch = naming.execution_input(cfg, naming.state_machine_name(cfg, "PR-42", False), "r-1", "ab" * 32, True)
    shared.put_object(Bucket=bucket, Key=branch.ModelArtifactCopySource.split("/", 1)[1], Body=b"branch model")
    assert not iam_check.allows(printed_policy(cfg.repo, "states"), "s3:GetObject",
                                f"arn:aws:s3:::{branch.ModelArtifactCopySource}")


def _with_branch_role_and_cache(data):
    _with_branch_role(data)
    for step in ("preprocessing", "training"):
        data["steps"][step]["cache"] = True


def test_a_pull_request_reuses_a_default_branch_step_by_a_copy_the_build_makes(enforcing, tmp_path, monkeypatch):
    """The step cache on a pull request (docs/contract.md 8.4): a hit on the default
    branch's records is copied by the Jenkins identity, with exactly the policy
    `mltp iam-policy --role jenkins` prints, into the pull request's own run, where
    its jobs read it; the branch job role still reaches nothing of the default
    branch's runs. The model is copied in parts (a multipart copy, as S3 needs
    above 5 GB; the part size lowered to S3's least, 5 MiB, to get there)."""
    from mltp import cache_index

    world = enforcing
    cfg = config_variant(tmp_path, EXAMPLE, _with_branch_role_and_cache, "cached")
    bucket = cfg.aws.bucket
    default_jobs = world.s3(world.assume(world.role(printed_policy(cfg.repo, "sagemaker"))))
    branch_policy = printed_policy(cfg.repo, "branch-sagemaker")
    branch_jobs = world.s3(world.assume(world.role(branch_policy)))
    jenkins_policy = printed_policy(cfg.repo, "jenkins")
    jenkins = Clients(REGION, world.endpoint, session=world.assume(world.role(jenkins_policy)))
    # main-1 ran on the default branch: its jobs wrote the splits and the model under runs/<run>/
    main = naming.execution_input(cfg, cfg.name, RUN, "ab" * 32, True).to_dict()
    model = bytes(range(256)) * (6 * 4096 + 7)  # 6 MiB and a bit
    default_jobs.put_object(Bucket=bucket, Key=main["ModelArtifactCopySource"].split("/", 1)[1], Body=model)
    for split in ("train", "validation", "test"):
        uri = main[f"{split.capitalize()}DataS3Uri"]
        default_jobs.put_object(Bucket=bucket, Key=uri.split("/", 3)[3] + f"{split}.csv", Body=f"{split}\n1\n".encode())
    records = {role: cache_index.record_for(cfg, cfg.name, role, role[0] * 64, {}, main)
               for role in ("preprocessing", "training")}

    machine = naming.state_machine_name(cfg, "PR-42", False)
    run = "jenkins-fraud-detection-PR-42-3"
    monkeypatch.setattr(cache_index, "COPY_PART_BYTES", 5 * 1024 * 1024)
    source = cache_index.default_index(cache_index.S3Index(jenkins, cfg, machine))
    copied = {role: source.copy_into(record, cache_index.own_outputs(cfg, machine, run, role))
              for role, record in records.items()}
    assert (copied["training"].objects, copied["training"].size) == (1, len(model))
    assert copied["preprocessing"].objects == 3 and copied["training"].text().startswith("1 object, 6.0 MiB, ")

    # The pull request's jobs read the copies in their own run ...
    own = naming.execution_input(cfg, machine, run, "cd" * 32, False)
    model_key = own.ModelArtifactS3Uri.split("/", 3)[3]
    assert "/branches/pr-42" in model_key
    assert branch_jobs.get_object(Bucket=bucket, Key=model_key)["Body"].read() == model
    admin = world.admin.client("s3", endpoint_url=world.endpoint)
    assert admin.head_object(Bucket=bucket, Key=model_key)["ETag"].endswith('-2"')  # copied in two parts
    assert branch_jobs.get_object(Bucket=bucket, Key=own.TrainDataS3Uri.split("/", 3)[3] + "train.csv")["Body"].read() \
        == b"train\n1\n"
    # ... and still nothing of the default branch's run.
    _refused(branch_jobs.get_object, Bucket=bucket, Key=main["ModelArtifactCopySource"].split("/", 1)[1])
    _refused(branch_jobs.get_object, Bucket=bucket, Key=main["TrainDataS3Uri"].split("/", 3)[3] + "train.csv")
    for action in ("s3:GetObject", "s3:PutObject"):
        assert not iam_check.allows(branch_policy, action, f"arn:aws:s3:::{main['ModelArtifactCopySource']}")

    # Jenkins reads the default run's step outputs (the copies' sources: moto checks the
    # copy's own action only) and writes only the branches' step folders.
    assert iam_check.allows(jenkins_policy, "s3:GetObject", f"arn:aws:s3:::{main['ModelArtifactCopySource']}")
    s3 = jenkins.s3
    _refused(s3.put_object, Bucket=bucket, Key=main["ModelArtifactCopySource"].split("/", 1)[1], Body=b"x")
    _refused(s3.put_object, Bucket=bucket, Key=naming.registry_prefix(cfg, RUN) + "model.tar.gz", Body=b"x")
    root = f"arn:aws:s3:::{bucket}/{naming.model_prefix(cfg)}"
    for key, allowed in ((f"runs/{RUN}/preprocessing/train/train.csv", True),
                         (f"runs/{RUN}/checkpoints/c.pt", False), (f"code/ab/src/train.py", True),
                         (f"branches/pr-42/runs/{run}/checkpoints/c.pt", False)):
        assert iam_check.allows(jenkins_policy, "s3:GetObject", root + key) is allowed, key
    for key, allowed in ((f"branches/pr-42/runs/{run}/model/x/output/model.tar.gz", True),
                         (f"branches/pr-42/runs/{run}/checkpoints/c.pt", False),
                         (f"runs/{run}/model/x/output/model.tar.gz", False)):
        assert iam_check.allows(jenkins_policy, "s3:PutObject", root + key) is allowed, key
    # Without the cache, the build reaches none of it.
    plain = printed_policy(config_variant(tmp_path, EXAMPLE, _with_branch_role, "plain").repo, "jenkins")
    assert not iam_check.allows(plain, "s3:GetObject", root + f"runs/{RUN}/preprocessing/train/train.csv")
    assert not iam_check.allows(plain, "s3:PutObject", root + f"branches/pr-42/runs/{run}/model/x/output/model.tar.gz")
