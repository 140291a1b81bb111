"""What a local job's process starts with (mltp.local.job_env, issue 19 parts 3,
4 and 7): the run's emulator as its AWS and never the agent's credentials,
Python paths as in the container, TRAINING_JOB_NAME, and / as a processing
script's working directory, private to the job.

The runner tests start real jobs (the test's interpreter, which has boto3)
that call the moto server over HTTP, inside the job's namespace where the
machine allows one."""

import json
import os
import sys
import uuid
from pathlib import Path

import boto3
import pytest

from mltp.aws import Clients
from mltp.local import job_env, sandbox
from mltp.local.runner import LocalJobRunner

AVAILABLE, REASON = sandbox.probe()
namespaces = [pytest.param(True, marks=pytest.mark.skipif(not AVAILABLE, reason=REASON), id="namespace"),
              pytest.param(False, id="no-namespace")]

AGENT = {
    "AWS_ACCESS_KEY_ID": "AKIAAGENTREALKEY0001", "AWS_SECRET_ACCESS_KEY": "agent-real-secret",
    "AWS_SESSION_TOKEN": "agent-session-token", "AWS_SECURITY_TOKEN": "agent-security-token",
    "AWS_PROFILE": "production", "AWS_DEFAULT_PROFILE": "production", "AWS_CONFIG_FILE": "/agent/aws/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/agent/aws/credentials", "AWS_ROLE_ARN": "arn:aws:iam::1:role/agent",
    "AWS_WEB_IDENTITY_TOKEN_FILE": "/agent/token", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "agent-container-token",
    "AWS_ENDPOINT_URL": "https://real.example", "AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "us-west-2",
    "PYTHONPATH": "/agent/lib", "PYTHONHOME": "/agent/home", "PYTHONSTARTUP": "/agent/startup.py",
    "VIRTUAL_ENV": "/agent/venv", "MLTP_PYTHON": "/agent/python", "SM_CHANNEL_TRAIN": "/elsewhere",
    "TRAINING_JOB_NAME": "some-other-job", "PATH": "/agent/venv/bin:/usr/bin:/bin", "HOME": "/home/agent",
}
AGENT_VALUES = {v for k, v in AGENT.items() if k not in ("PATH", "HOME")}


def test_the_job_gets_the_emulator_and_nothing_of_the_agents_aws():
    env = job_env.job_environment(AGENT, "/envs/sk/bin/python", "http://127.0.0.1:5123", "eu-west-2")
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5123"
    assert env["AWS_ACCESS_KEY_ID"] == "mltp-local-job" and env["AWS_SECRET_ACCESS_KEY"] == "mltp-local"
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-2"
    assert env["AWS_CONFIG_FILE"] == env["AWS_SHARED_CREDENTIALS_FILE"] == os.devnull
    assert env["AWS_EC2_METADATA_DISABLED"] == "true"
    assert sorted(k for k in env if k.startswith("AWS_")) == sorted(job_env.aws_variables("x", "y"))
    assert not AGENT_VALUES & set(env.values()), AGENT_VALUES & set(env.values())
    for name in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "MLTP_PYTHON", "SM_CHANNEL_TRAIN",
                 "TRAINING_JOB_NAME", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        assert name not in env
    assert env["HOME"] == "/home/agent"
    # The step's interpreter first on PATH, the activated virtualenv (mltp's) off it.
    assert env["PATH"].split(os.pathsep) == ["/envs/sk/bin", "/usr/bin", "/bin"]


def test_a_training_job_is_told_its_name():
    env = job_env.job_environment(AGENT, "/envs/sk/bin/python", "http://127.0.0.1:5123", "eu-west-2",
                                  training_job="model-train-0123456789ab")
    assert env["TRAINING_JOB_NAME"] == "model-train-0123456789ab"


def test_without_an_emulator_the_job_gets_no_aws_at_all():
    env = job_env.job_environment(AGENT, "/envs/sk/bin/python", None, None)
    assert not [k for k in env if k.startswith("AWS_")]


# A job script: what boto3 finds inside the job, and a round trip to the emulated S3.
PROBE = r"""
import json, os, sys
import boto3
bucket = sys.argv[1]
s3 = boto3.client("s3")
body = s3.get_object(Bucket=bucket, Key="in/data.txt")["Body"].read().decode()
s3.put_object(Bucket=bucket, Key="out/written-by-job.txt", Body=body.upper().encode())
session = boto3.session.Session()
open("written-to-cwd.txt", "w").write("mine")
print(json.dumps({"key": session.get_credentials().access_key, "region": session.region_name, "body": body,
                  "cwd": os.getcwd(), "pythonpath": os.environ.get("PYTHONPATH"),
                  "endpoint": s3.meta.endpoint_url,
                  "aws": sorted(k for k in os.environ if k.startswith("AWS_"))}))
"""


@pytest.mark.parametrize("sandboxed", namespaces)
def test_a_processing_job_reads_and_writes_the_emulated_s3_never_with_the_agents_keys(
        moto_endpoint, tmp_path, monkeypatch, sandboxed):
    bucket = f"job-env-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=moto_endpoint, region_name="eu-west-2",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
    s3.put_object(Bucket=bucket, Key="in/data.txt", Body=b"from the emulator")
    runner = LocalJobRunner(Clients("eu-west-2", moto_endpoint), tmp_path / "work", sandboxed=sandboxed)
    runner.clients.logs  # made now: the agent's settings below are the job's concern, not these clients'
    # The agent's own AWS and Python settings, as mltp's process would have them
    # (not a profile: the in-process moto server would look it up; the unit test above covers it).
    for name, value in AGENT.items():
        if name not in ("PATH", "HOME", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            monkeypatch.setenv(name, value)
    job = f"model-prep-{uuid.uuid4().hex[:12]}"
    root = runner.workdir / job
    runner._execute("processing", job, [sys.executable, "-c", PROBE, bucket], {}, runner._processing_cwd(root),
                    {"StoppingCondition": {"MaxRuntimeInSeconds": 120}})
    log = (runner.workdir / f"{job}.log").read_text()
    seen = json.loads(log.strip().splitlines()[-1])
    assert seen["key"] == "mltp-local-job" and seen["region"] == "eu-west-2", seen
    assert seen["body"] == "from the emulator" and seen["endpoint"] == moto_endpoint
    assert s3.get_object(Bucket=bucket, Key="out/written-by-job.txt")["Body"].read() == b"FROM THE EMULATOR"
    assert not any(value in log for value in AGENT_VALUES), log
    assert seen["pythonpath"] is None
    assert "AWS_SESSION_TOKEN" not in seen["aws"] and "AWS_PROFILE" not in seen["aws"]
    # Its working directory: / in its namespace, its own folder without one; either
    # way what it writes there stays in the job's root folder.
    assert seen["cwd"] == ("/" if sandboxed else str(root / sandbox.JOB_ROOT))
    assert (root / sandbox.JOB_ROOT / "written-to-cwd.txt").read_text() == "mine"
    assert not os.path.exists("/written-to-cwd.txt")
    if sandboxed:  # the mount points of its / are gone again: the folder holds what the job wrote
        assert os.listdir(root / sandbox.JOB_ROOT) == ["written-to-cwd.txt"]


def test_the_fallback_says_once_where_processing_scripts_start():
    assert sandbox.NO_NAMESPACE_ROOT.count("\n") == 0
    assert "instead of /" in sandbox.NO_NAMESPACE_ROOT and "root/" in sandbox.NO_NAMESPACE_ROOT


@pytest.mark.skipif(not AVAILABLE, reason=REASON)
@pytest.mark.parametrize("tool", [t for t in sandbox.TOOLS if sandbox.shutil.which(t)
                                  and sandbox.try_tool(sandbox.shutil.which(t)) is None] or ["none"])
def test_slash_is_the_jobs_own_and_the_hosts_entries_are_there(tmp_path, tool):
    """`..` from / is /, files written there land in the job's root folder, and
    the host's top-level entries (its Python, /tmp, /usr) are all reachable."""
    if tool == "none":
        pytest.skip("no tool makes namespaces here")
    import subprocess

    marker = f"mltp-test-{uuid.uuid4().hex[:8]}"
    code = (f"import os, json; open('../{marker}', 'w').write('x'); "
            f"print(json.dumps({{'cwd': os.getcwd(), 'read': open('{marker}').read(), "
            f"'entries': sorted(os.listdir('/'))}}))")
    job = tmp_path / "job"
    command = sandbox.wrap([sys.executable, "-c", code], job / "opt" / "ml", "/", tool=sandbox.shutil.which(tool))
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["cwd"] == "/" and seen["read"] == "x"
    assert sorted(set(os.listdir("/")) | {marker}) == seen["entries"]
    assert (job / sandbox.JOB_ROOT / marker).read_text() == "x"
    assert not os.path.exists("/" + marker)
    sandbox.tidy(job / "opt" / "ml")
    assert os.listdir(job / sandbox.JOB_ROOT) == [marker]
    assert Path(sys.executable).exists()


# --------------------------------------------------------------------------- end to end: the corpus repo

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "corpus" / "boto3-and-root"


def test_scripts_that_call_s3_and_rely_on_slash_run_locally_unchanged(tmp_path):
    """preprocess.py downloads its input with boto3 from the URI in its
    arguments and writes a note beside it; evaluate.py extracts the model to
    `..` and opens it from its working directory; train.py reports its job
    name. The agent's credentials and Python path are set and must not reach
    any job."""
    import re
    import shutil
    import subprocess

    repo = tmp_path / "boto3-and-root"
    shutil.copytree(CORPUS, repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLTP_RUN", "MLTP_REPORT", "BRANCH_",
                                                                     "CHANGE_", "BUILD_", "GIT_"))}
    env.update({k: v for k, v in AGENT.items() if k not in ("PATH", "HOME", "VIRTUAL_ENV", "PYTHONHOME",
                                                            "PYTHONSTARTUP", "MLTP_PYTHON")})
    # The profile the agent's AWS_PROFILE names, with keys of its own.
    aws = tmp_path / "agent-aws"
    aws.mkdir()
    (aws / "config").write_text("[profile production]\nregion = us-west-2\n")
    (aws / "credentials").write_text("[production]\naws_access_key_id = AKIAAGENTPROFILEKEY1\n"
                                     "aws_secret_access_key = agent-profile-secret\n")
    env.update(AWS_CONFIG_FILE=str(aws / "config"), AWS_SHARED_CREDENTIALS_FILE=str(aws / "credentials"))
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "corpus"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logs = {path.name.split("-")[-2]: path.read_text() for path in (repo / ".mltp/runs/corpus/logs").glob("*.log")}
    assert sorted(logs) == ["eval", "prep", "train"]
    assert ("downloaded s3://boto3-and-root-data/raw/points.csv rows 60 counts "
            "{'train': 30, 'validation': 15, 'test': 15}") in logs["prep"]
    assert "aws region eu-west-2 key id mltp-local-job" in logs["prep"]
    if AVAILABLE:
        assert "working directory / PYTHONPATH (unset)" in logs["prep"]
        assert re.search(r"^mse [0-9.]+ working directory /$", logs["eval"], re.M), logs["eval"]
    train_job = re.search(r"^job name (\S+) TRAINING_JOB_NAME (\S+)$", logs["train"], re.M)
    assert train_job and train_job.group(1) == train_job.group(2), logs["train"]
    assert re.fullmatch(r"boto3-and-root-train-[0-9a-f]{12}", train_job.group(1))
    # The toolkit's PYTHONPATH: its own sys.path, the code folder first; nothing of the agent's.
    pythonpath = re.search(r"^working directory (\S+) PYTHONPATH (\S+)$", logs["train"], re.M)
    assert pythonpath.group(2).split(":")[0] == pythonpath.group(1) and pythonpath.group(1).endswith("/opt/ml/code")
    assert "/agent/" not in "".join(logs.values())
    for secret in AGENT_VALUES | {"AKIAAGENTPROFILEKEY1", "agent-profile-secret", str(aws)}:
        assert not any(secret in text for text in logs.values()), secret
    assert not os.path.exists("/linear-model")


# --------------------------------------------------------------------------- what a job may call (job_access)


def test_a_job_key_reaches_what_the_job_role_may_and_mltps_own_key_everything():
    """A server of its own with the guard installed, called over HTTP as a job
    and as mltp: the job's SageMaker, Step Functions and IAM calls are refused
    with each protocol's AccessDenied, its S3, STS and CloudWatch calls answered."""
    from botocore.exceptions import ClientError
    from moto.server import ThreadedMotoServer

    from mltp.local import job_access

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        job_access.install(server, job_env.JOB_KEY_ID)
        endpoint = "http://127.0.0.1:%d" % server.get_host_and_port()[1]

        def client(service, key):
            return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-2", aws_access_key_id=key,
                                aws_secret_access_key="mltp-local")

        job, own = job_env.JOB_KEY_ID, job_env.EMULATOR_KEY_ID
        client("s3", job).create_bucket(Bucket="job-bucket", CreateBucketConfiguration={"LocationConstraint": "eu-west-2"})
        client("s3", job).put_object(Bucket="job-bucket", Key="a.txt", Body=b"a")
        url = client("s3", job).generate_presigned_url("get_object", Params={"Bucket": "job-bucket", "Key": "a.txt"})
        import urllib.request

        assert urllib.request.urlopen(url).read() == b"a"
        assert client("sts", job).get_caller_identity()["Account"]
        client("logs", job).create_log_group(logGroupName="/job/own")
        client("cloudwatch", job).put_metric_data(Namespace="job", MetricData=[{"MetricName": "m", "Value": 1.0}])
        refused = {}
        for service, call in (("sagemaker", lambda c: c.list_model_package_groups()),
                              ("stepfunctions", lambda c: c.list_state_machines()),
                              ("iam", lambda c: c.list_roles())):
            with pytest.raises(ClientError) as caught:
                call(client(service, job))
            refused[service] = caught.value.response["Error"]["Code"]
            assert "S3, STS and CloudWatch only" in caught.value.response["Error"]["Message"]
            call(client(service, own))  # mltp's own key: answered
        assert refused == {"sagemaker": "AccessDeniedException", "stepfunctions": "AccessDeniedException",
                           "iam": "AccessDenied"}
    finally:
        server.stop()


def test_an_environment_whose_botocore_ignores_the_endpoint_is_named_once(tmp_path):
    """botocore before 1.31 does not read AWS_ENDPOINT_URL: the run says so, naming
    the interpreter and the version found in its virtualenv (or, for an
    overlay of --python, in that interpreter's site-packages)."""
    from mltp.local.envs import Environment

    def env(name, venv_botocore=None, base_botocore=None):
        venv = tmp_path / name
        site = venv / "lib" / "python3.9" / "site-packages"
        site.mkdir(parents=True)
        if venv_botocore:
            (site / f"botocore-{venv_botocore}.dist-info").mkdir()
        protect = ()
        if base_botocore:
            base = tmp_path / f"{name}-base"
            (base / f"botocore-{base_botocore}.dist-info").mkdir(parents=True)
            protect = (str(base),)
        return Environment(python=str(venv / "bin" / "python"), path=venv, requirements=None, protect=protect,
                           named=f"/usr/bin/{name}" if base_botocore else None)

    recent, old, overlay, none = (env("recent", "1.44.8"), env("old", "1.29.165"),
                                  env("python3.7", base_botocore="1.20.112"), env("none"))
    assert job_env.botocore_version(recent) == "1.44.8" and job_env.botocore_version(none) is None
    assert job_env.botocore_version(overlay) == "1.20.112"
    assert job_env.old_sdk_notice([recent, none]) is None
    assert job_env.old_sdk_notice([recent, old, old, overlay]) == (
        f"local: {old.python} has botocore 1.29.165, /usr/bin/python3.7 has botocore 1.20.112, which ignores "
        "AWS_ENDPOINT_URL: a script's own boto3 calls would go to real AWS instead of the emulator (and be refused "
        "there); list boto3>=1.28 in requirements.txt")
    assert job_env.old_sdk_notice([env("edge", "1.31.0")]) is None


def test_rendered_for_aws_nothing_of_the_local_aws_reaches_the_jobs():
    """On AWS the scripts run as the job role: the definition hands them the S3
    URI as an argument and sets no endpoint, key or region variable."""
    from mltp import config as config_module
    from mltp import definition

    text = definition.render(config_module.load(CORPUS))
    assert "s3://boto3-and-root-data/raw/points.csv" in text
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "mltp-local", "TRAINING_JOB_NAME", "127.0.0.1"):
        assert name not in text, name
