"""`mltp iam-policy` through the CLI: the documents, the notes on Resource "*",
the formats, bad input (exit 2, one line) and the copy of its output in docs/permissions.md."""

import json
import re
import time
from pathlib import Path

import yaml
from click.testing import CliRunner

from mltp import config as config_mod
from mltp import policies
from mltp.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"


def cli(*args, env=None):
    try:  # click 8.1 mixes stderr into stdout unless told not to; 8.2 keeps them apart
        runner = CliRunner(mix_stderr=False)
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, ["iam-policy", *map(str, args)], env=env)


def test_prints_the_policy_and_notes_why_a_resource_is_any():
    result = cli(EXAMPLE, "--role", "states")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == policies.policy(config_mod.load(EXAMPLE), "states").document()
    assert result.stderr.strip() == ('# LogDelivery: AWS allows nothing narrower than "*" for log deliveries, '
                                     "resource policies and listing log groups: IAM lists no resource type for it")


def test_trust_policy_names_the_service_and_the_account():
    result = cli(EXAMPLE, "--role", "sagemaker", "--trust")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"aws:SourceAccount": "123456789012"}}}]}


def test_features_add_what_they_need():
    plain = json.loads(cli(EXAMPLE, "--role", "jenkins").stdout)
    more = json.loads(cli(EXAMPLE, "--role", "jenkins", "--feature", "trigger", "--feature", "approval").stdout)
    sids = {s["Sid"] for s in more["Statement"]} - {s["Sid"] for s in plain["Statement"]}
    assert sids == {"TriggerNotifications", "TriggerFunction", "PassTriggerRole"}
    actions = [a for s in more["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert "sagemaker:UpdateModelPackage" in actions


def test_cloudformation_is_a_role_template():
    result = cli(EXAMPLE, "--role", "states", "--format", "cloudformation")
    assert result.exit_code == 0
    template = yaml.safe_load(result.stdout)
    role = template["Resources"]["FraudDetectionStatesRole"]
    assert role["Properties"]["RoleName"] == "StepFunctionsExecution"
    assert result.stderr == ""


def test_invalid_config_is_one_line_and_exit_2(tmp_path):
    repo = tmp_path / "m"
    repo.mkdir()
    (repo / "config.yaml").write_text((EXAMPLE / "config.yaml").read_text().replace("version: 1", "version: 2"))
    result = cli(repo, "--role", "states")
    assert result.exit_code == 2
    assert "version" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_jenkins_arn_is_exit_2():
    result = cli(EXAMPLE, "--role", "jenkins", "--jenkins-arn", "jenkins")
    assert result.exit_code == 2
    assert result.stderr.startswith("mltp: --jenkins-arn jenkins: must be an IAM role or user ARN")
    ok = cli(EXAMPLE, "--role", "jenkins", "--jenkins-arn", "arn:aws:iam::123456789012:role/jenkins-agent")
    assert {"Sid": "PreflightSelf", "Effect": "Allow", "Action": "iam:SimulatePrincipalPolicy",
            "Resource": "arn:aws:iam::123456789012:role/jenkins-agent"} in json.loads(ok.stdout)["Statement"]


def test_needs_no_aws_and_is_quick():
    started = time.monotonic()
    result = cli(EXAMPLE, "--role", "jenkins", env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.exit_code == 0
    assert time.monotonic() - started < 2


def test_readme_shows_the_commands_output_for_the_example():
    readme = (ROOT / "docs" / "permissions.md").read_text()
    match = re.search(r"<!-- iam-policy --role jenkins: begin -->\n```json\n(.*?)```\n<!-- iam-policy --role jenkins: end -->",
                      readme, re.S)
    assert match, "docs/permissions.md lost the generated Jenkins policy block"
    assert match.group(1) == cli(EXAMPLE, "--role", "jenkins").stdout, \
        "docs/permissions.md's Jenkins policy differs from `mltp iam-policy examples/fraud-detection --role jenkins`: paste it again"
