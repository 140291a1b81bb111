"""After the gate, against moto over HTTP: `mltp models`, `approve`, `reject`,
`fetch-model`, and the champion the next run is compared with.

Versions are registered here the way the state machine's Register step does
(CreateModelPackage with the run's metadata and `metric:<name>` properties),
then the checksum is recorded as `wait` does after a passing run.
"""

import hashlib
import json
import uuid

import boto3
import pytest
from click.testing import CliRunner

from mltp import registry
from mltp.aws import Clients
from mltp.cli import main

REGION = "ap-northeast-2"
BUCKET = "mlops-artifacts"


def cli(*args, env=None):
    result = CliRunner().invoke(main, [str(a) for a in args], env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


class Group:
    """A model repo whose config names a fresh model package group, and helpers to fill it."""

    def __init__(self, repo, endpoint):
        self.repo = repo
        self.endpoint = endpoint
        self.name = "g" + uuid.uuid4().hex[:10]
        path = repo / "config.yaml"
        path.write_text(path.read_text().replace("model_package_group: fraud-detection", f"model_package_group: {self.name}"))
        self.sm = boto3.client("sagemaker", region_name=REGION, endpoint_url=endpoint)
        self.s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
        try:
            self.s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        except self.s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        self.sm.create_model_package_group(ModelPackageGroupName=self.name)
        self.clients = Clients(REGION, endpoint)

    def register(self, run, auc, fpr=0.01, model=b"model bytes", checksum=True):
        key = f"mltp/{self.name}/registry/{run}/model.tar.gz"  # the copy the Register step names
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=model)
        arn = self.sm.create_model_package(
            ModelPackageGroupName=self.name,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/{key}"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            CustomerMetadataProperties={"RunName": run, "GitCommit": f"commit-{run}", "BuildUrl": f"https://j/{run}/",
                                        "metric:auc": str(auc), "metric:false_positive_rate": str(fpr)},
        )["ModelPackageArn"]
        if checksum:
            registry.record_checksum(self.clients, arn)
        return arn

    def status(self, arn):
        return self.sm.describe_model_package(ModelPackageName=arn)["ModelApprovalStatus"]

    def run(self, *args, env=None):
        return cli(*args[:1], self.repo, "--endpoint-url", self.endpoint, *args[1:], env=env)


@pytest.fixture
def group(example_repo, aws_env):
    return Group(example_repo, aws_env)


def test_models_lists_newest_first_with_metrics_commit_build_and_decision(group):
    for i, auc in enumerate((0.91, 0.93, 0.92), start=1):
        group.register(f"run-{i}", auc)
    assert group.run("approve", "--version", "2", "--by", "alice", "--note", "better recall").exit_code == 0
    result = group.run("models", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [v["version"] for v in data] == [3, 2, 1]
    second = data[1]
    assert second["status"] == "Approved" and second["metrics"] == {"auc": 0.93, "false_positive_rate": 0.01}
    assert second["commit"] == "commit-run-2" and second["build_url"] == "https://j/run-2/" and second["run"] == "run-2"
    assert second["decided_by"] == "alice" and second["note"] == "better recall"
    assert len(second["sha256"]) == 64
    table = group.run("models").output.splitlines()
    assert table[1].split()[:2] == ["version", "status"]
    assert table[2].split()[:2] == ["3", "PendingManualApproval"]
    assert "auc=0.93" in table[3] and "alice" in table[3] and "better recall" in table[3]


def test_approve_records_who_when_build_and_note(group):
    arn = group.register("run-1", 0.95)
    result = group.run("approve", "--run", "run-1", "--note", "ship it",
                       env={"BUILD_USER_ID": "rm-bob", "BUILD_URL": "https://jenkins/job/m/9/"})
    assert result.exit_code == 0, result.output
    described = group.sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    text = described["ApprovalDescription"]
    assert text.startswith("Approved by rm-bob at 20") and "(build https://jenkins/job/m/9/): ship it" in text
    # the update kept what the Register step and the checksum recorded
    assert described["CustomerMetadataProperties"]["RunName"] == "run-1"
    assert len(described["CustomerMetadataProperties"]["ModelSha256"]) == 64


def test_by_wins_over_build_user(group):
    arn = group.register("run-1", 0.95)
    assert group.run("reject", "--version", "1", "--by", "carol", "--note", "drift",
                     env={"BUILD_USER_ID": "rm-bob"}).exit_code == 0
    described = group.sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Rejected"
    assert described["ApprovalDescription"].startswith("Rejected by carol at ")
    assert described["ApprovalDescription"].endswith(": drift")


def test_already_in_that_state_says_so_and_exits_0(group):
    arn = group.register("run-1", 0.95)
    assert group.run("approve", "--version", "1").exit_code == 0
    before = group.sm.describe_model_package(ModelPackageName=arn)["ApprovalDescription"]
    result = group.run("approve", "--version", "1", "--by", "someone-else")
    assert result.exit_code == 0
    assert "already Approved; nothing changed" in result.output
    assert group.sm.describe_model_package(ModelPackageName=arn)["ApprovalDescription"] == before


def test_a_version_of_another_group_is_refused_with_2(group):
    arn = group.register("run-1", 0.95)
    other = arn.replace(f"/{group.name}/", "/someone-elses-model/")
    for version in (other, "someone-elses-model/1"):
        result = group.run("approve", "--version", version)
        assert result.exit_code == 2, result.output
        assert "belongs to model package group someone-elses-model" in result.output
    assert group.status(arn) == "PendingManualApproval"


def test_unknown_version_or_run_is_2_listing_the_newest(group):
    for i in (1, 2):
        group.register(f"run-{i}", 0.95)
    result = group.run("approve", "--version", "7")
    assert result.exit_code == 2
    assert f"group {group.name} has no version 7; newest versions: 2 (PendingManualApproval, run run-2), 1 (" in result.output
    result = group.run("reject", "--run", "nope")
    assert result.exit_code == 2
    assert "no version" in result.output and "registered by run nope" in result.output and "2 (Pending" in result.output
    assert group.run("approve").exit_code == 2  # neither --version nor --run


def test_fetch_takes_the_newest_approved_not_the_oldest(group, tmp_path):
    arns = [group.register(f"run-{i}", 0.9 + i / 100, model=f"model {i}".encode()) for i in (1, 2, 3, 4)]
    for version in ("1", "3"):
        assert group.run("approve", "--version", version).exit_code == 0
    target = tmp_path / "out"
    result = group.run("fetch-model", "--to", target)
    assert result.exit_code == 0, result.output
    assert (target / "model.tar.gz").read_bytes() == b"model 3"
    manifest = json.loads((target / "model-package.json").read_text())
    assert manifest["arn"] == arns[2] and manifest["version"] == 3 and manifest["commit"] == "commit-run-3"
    assert manifest["metrics"]["auc"] == pytest.approx(0.93)
    assert manifest["sha256"] == hashlib.sha256(b"model 3").hexdigest()
    # an explicit version, even one not approved
    result = group.run("fetch-model", "--to", target, "--version", "4")
    assert result.exit_code == 0 and "is PendingManualApproval, not Approved" in result.output
    assert (target / "model.tar.gz").read_bytes() == b"model 4"


def test_fetch_with_nothing_approved_is_2(group, tmp_path):
    group.register("run-1", 0.95)
    result = group.run("fetch-model", "--to", tmp_path / "out")
    assert result.exit_code == 2
    assert "has no Approved version to fetch" in result.output
    assert not (tmp_path / "out" / "model.tar.gz").exists()


def test_fetch_of_a_changed_artifact_is_5_and_writes_nothing(group, tmp_path):
    arn = group.register("run-1", 0.95)
    group.run("approve", "--version", "1")
    url = group.sm.describe_model_package(ModelPackageName=arn)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, key = url[5:].split("/", 1)
    group.s3.put_object(Bucket=bucket, Key=key, Body=b"tampered")
    result = group.run("fetch-model", "--to", tmp_path / "out")
    assert result.exit_code == 5, result.output
    assert "the artifact changed since registration" in result.output
    # Both digests are shown (they are no secrets): what was fetched and what was registered.
    import hashlib
    tampered = hashlib.sha256(b"tampered").hexdigest()
    registered = hashlib.sha256(b"model bytes").hexdigest()
    assert f"sha256:{tampered}" in result.output and f"sha256:{registered}" in result.output, result.output
    assert "[redacted" not in result.output
    assert not (tmp_path / "out" / "model.tar.gz").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_fetch_without_a_recorded_checksum_is_5(group, tmp_path):
    group.register("run-1", 0.95, checksum=False)
    group.run("approve", "--version", "1")
    result = group.run("fetch-model", "--to", tmp_path / "out")
    assert result.exit_code == 5 and "has no SHA-256 recorded" in result.output


def test_the_checksum_is_of_the_bytes_the_run_copied(group, tmp_path):
    """`wait` hashes the registry copy only while it holds what CopyModel copied (its
    ETag, If-Match): a copy replaced after the run is never recorded, so fetch-model
    refuses that version; a version naming another object than the copy neither."""
    arn = group.register("run-1", 0.95, checksum=False)
    uri = f"s3://{BUCKET}/mltp/{group.name}/registry/run-1/model.tar.gz"
    key = uri[len(f"s3://{BUCKET}/"):]
    etag = group.s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    output = {"registry": {"model": {"ETag": etag}, "evaluation": {"ETag": '"e"'}}}
    copy = registry.model_copy({"RegistryModelS3Uri": uri}, output)
    assert copy == registry.ModelCopy(uri, etag)
    assert registry.model_copy({"RegistryModelS3Uri": uri}, {"register": {}}) is None  # a run that copied nothing
    assert registry.record_checksum(group.clients, arn, copy) == hashlib.sha256(b"model bytes").hexdigest()

    swapped = group.register("run-2", 0.96, checksum=False)
    key2 = f"mltp/{group.name}/registry/run-2/model.tar.gz"
    copied = registry.ModelCopy(f"s3://{BUCKET}/{key2}", group.s3.head_object(Bucket=BUCKET, Key=key2)["ETag"])
    group.s3.put_object(Bucket=BUCKET, Key=key2, Body=b"a pickle that runs code")
    with pytest.raises(registry.AwsRefused, match="changed after the run copied it"):
        registry.record_checksum(group.clients, swapped, copied)
    assert "ModelSha256" not in group.sm.describe_model_package(ModelPackageName=swapped)["CustomerMetadataProperties"]
    assert group.run("approve", "--version", "2", "--by", "alice").exit_code == 0
    fetched = group.run("fetch-model", "--to", tmp_path / "out", "--version", "2")
    assert fetched.exit_code == 5, fetched.output
    with pytest.raises(registry.AwsRefused, match="not the registry copy"):
        registry.record_checksum(group.clients, arn, registry.ModelCopy(f"s3://{BUCKET}/elsewhere/model.tar.gz", etag))


def test_the_report_reads_the_registry_copy_of_evaluation_json():
    data = {"EvaluationKey": "p/m/runs/r/evaluation/evaluation.json",
            "RegistryEvaluationKey": "p/m/registry/r/evaluation.json"}
    copied = {"registry": {"model": {"ETag": '"m"'}, "evaluation": {"ETag": '"e"'}}}
    assert registry.evaluation_read_from(data, copied)["EvaluationKey"] == "p/m/registry/r/evaluation.json"
    assert registry.evaluation_read_from(data, {"evaluation": {}})["EvaluationKey"] == data["EvaluationKey"]
    assert registry.evaluation_read_from(data, None)["EvaluationKey"] == data["EvaluationKey"]


def test_champion_input_is_the_newest_approved_with_bars(group):
    from mltp import config as config_mod

    cfg = config_mod.load(group.repo)
    assert registry.champion_input(group.clients, cfg) == {
        "Reason": f"no Approved version in model package group {group.name}"}
    first = group.register("run-1", 0.91)
    group.register("run-2", 0.95)
    group.run("approve", "--version", "1")
    champion = registry.champion_input(group.clients, cfg)
    assert champion["Version"] == 1 and champion["Arn"] == first
    assert champion["Metrics"] == {"auc": 0.91, "false_positive_rate": 0.01}
    assert champion["Bars"] == {}  # the example's gate has no champion rule


def test_missing_group_has_no_versions(example_repo, aws_env):
    path = example_repo / "config.yaml"
    path.write_text(path.read_text().replace("model_package_group: fraud-detection", "model_package_group: never-made"))
    result = cli("models", example_repo, "--endpoint-url", aws_env)
    assert result.exit_code == 0 and "never-made: no versions" in result.output


def test_group_and_region_work_without_a_model_repo(group, tmp_path):
    group.register("run-1", 0.95)
    empty = tmp_path / "deploy-job"
    empty.mkdir()
    assert cli("approve", empty, "--group", group.name, "--region", REGION, "--endpoint-url", group.endpoint,
               "--version", "1").exit_code == 0
    info = tmp_path / "fetch.txt"
    result = cli("fetch-model", empty, "--group", group.name, "--region", REGION, "--endpoint-url", group.endpoint,
                 "--to", empty / "model", "--info-file", info)
    assert result.exit_code == 0, result.output
    lines = dict(line.split("=", 1) for line in info.read_text().splitlines())
    assert lines["version"] == "1" and lines["status"] == "Approved" and lines["model"] == str(empty / "model" / "model.tar.gz")
    result = cli("models", empty, "--group", group.name, "--endpoint-url", group.endpoint, env={"AWS_REGION": "",
                                                                                                 "AWS_DEFAULT_REGION": ""})
    assert result.exit_code == 2 and "--group needs --region" in result.output


def test_versions_registered_before_metric_properties_show_their_evaluation_json(group):
    key = f"mltp/{group.name}/runs/old/evaluation/evaluation.json"
    group.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps({"metrics": {"auc": {"value": 0.9}}}).encode())
    group.sm.create_model_package(
        ModelPackageGroupName=group.name, ModelApprovalStatus="Approved",
        InferenceSpecification={"Containers": [{"Image": "img", "ModelDataUrl": f"s3://{BUCKET}/x/model.tar.gz"}],
                                "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
        ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{BUCKET}/{key}"}}},
        CustomerMetadataProperties={"RunName": "old", "GitCommit": "unknown", "BuildUrl": "unknown"},
    )
    (old,) = json.loads(group.run("models", "--json").output)
    assert old["metrics"] == {"auc": 0.9} and old["commit"] == "" and old["status"] == "Approved"


def test_fetch_never_writes_through_links_left_in_the_target(group, tmp_path):
    """`.mltp/model/` (the default --to) of a cloned repo may hold links at the
    names fetch-model writes: they are replaced, what they point at stays."""
    import os

    group.register("run-1", 0.95, model=b"model 1")
    group.run("approve", "--version", "1")
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    target = group.repo / ".mltp" / "model"
    target.mkdir(parents=True)
    for name in (".model.tar.gz.part", "model.tar.gz", "model-package.json", f".model-package.json.{os.getpid()}.tmp"):
        os.symlink(outside, target / name)
    result = group.run("fetch-model")
    assert result.exit_code == 0, result.output
    assert outside.read_text() == "precious\n"
    assert (target / "model.tar.gz").read_bytes() == b"model 1" and not (target / "model.tar.gz").is_symlink()
    assert json.loads((target / "model-package.json").read_text())["version"] == 1
