"""`mltp init`: a model repo that passes `mltp run --local` as it is, written
without ever overwriting a file."""

import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from mltp import scaffold
from mltp.config_schema import json_schema

JENKINS_VARS = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
                "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE")


def mltp(*args, cwd, timeout=240):
    env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    return subprocess.run([sys.executable, "-m", "mltp.cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_init_then_run_local_passes(tmp_path):
    made = mltp("init", "x", cwd=tmp_path)
    assert made.returncode == 0, made.stdout + made.stderr
    repo = tmp_path / "x"
    assert sorted(p.name for p in repo.iterdir()) == sorted(
        [".gitignore", ".mltpignore", "Jenkinsfile", "README.md", "config.schema.json", "config.yaml",
         "evaluation.py", "preprocessing.py", "requirements.txt", "train.py"])
    ran = mltp("run", "x", "--local", "--run-name", "first", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    report = json.loads((repo / ".mltp" / "runs" / "first" / "report.json").read_text())
    assert report["status"] == "passed" and report["gate"][0]["metric"] == "auc" and report["gate"][0]["value"] > 0.8
    assert ".mltp/" in (repo / ".gitignore").read_text().splitlines()
    assert "mltp run . --local" in (repo / "README.md").read_text()  # the quick start is the command that just passed


def test_the_config_carries_the_schema_comment_and_the_schema(tmp_path):
    scaffold.init(tmp_path / "m", framework="xgboost", region="eu-central-1", bucket="my-bucket")
    config = (tmp_path / "m" / "config.yaml").read_text()
    assert config.splitlines()[0] == "# yaml-language-server: $schema=config.schema.json"
    assert "\nname: model-m\n" in config  # "m" is too short for a name: made valid
    assert "region: eu-central-1" in config and "bucket: my-bucket" in config and "framework: xgboost" in config
    assert json.loads((tmp_path / "m" / "config.schema.json").read_text()) == json_schema()
    checked = mltp("validate", "m", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for script in ("preprocessing.py", "train.py", "evaluation.py"):
        py_compile.compile(str(tmp_path / "m" / script), doraise=True)
    assert "import xgboost" in (tmp_path / "m" / "train.py").read_text()


def test_init_refuses_to_overwrite_anything_and_writes_nothing(tmp_path):
    repo = tmp_path / "existing"
    repo.mkdir()
    (repo / "train.py").write_text("# mine\n")
    (repo / "notes.txt").write_text("unrelated\n")
    result = mltp("init", "existing", cwd=tmp_path)
    assert result.returncode == 2
    assert "writes nothing" in result.stderr and "train.py: exists" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in repo.iterdir()) == ["notes.txt", "train.py"]
    assert (repo / "train.py").read_text() == "# mine\n"


@pytest.mark.parametrize("args,message", [
    (["--name", "Bad_Name"], "--name 'Bad_Name' must be"),
    (["--framework", "pytorch"], "Invalid value for '--framework'"),
])
def test_bad_options_exit_2_with_one_line(tmp_path, args, message):
    result = mltp("init", "new", *args, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "new").exists()


def test_default_name_is_a_valid_model_name(tmp_path):
    assert scaffold.default_name(tmp_path / "My Model_2") == "my-model-2"
    assert scaffold.default_name(Path("/x/ab")) == "model-ab"
