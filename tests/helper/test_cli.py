"""The command itself: version, help, light imports, one-line errors."""

import subprocess
import sys
from pathlib import Path

import mltp

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "fraud-detection"

PROBE = """
import sys
from mltp.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sagemaker', 'stepfunctions', 'moto'))
print('HEAVY', heavy, 'EXIT', code)
"""


def probe(*args):
    out = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return out.stdout.strip().splitlines()[-1]


def test_help_and_validate_do_not_import_the_sdks():
    assert probe("--help") == "HEAVY [] EXIT 0"
    assert probe("validate", str(EXAMPLE)) == "HEAVY [] EXIT 0"
    assert probe("validate", str(ROOT / "tests")) == "HEAVY [] EXIT 2"


def test_version():
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "--version"], capture_output=True, text=True)
    assert out.stdout.strip() == f"mltp, version {mltp.__version__}"


def test_validate_writes_the_info_file_for_the_jenkins_step(tmp_path):
    info = tmp_path / "info.txt"
    env = {"PATH": "/usr/bin:/bin", "BRANCH_NAME": "feature/x", "BUILD_TAG": "jenkins-fraud-feature%2Fx-3"}
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(EXAMPLE), "--info-file", str(info)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split("=", 1) for line in info.read_text().splitlines())
    assert lines["name"] == "fraud-detection"
    assert lines["register"] == "false"
    assert lines["state_machine"].startswith("fraud-detection--feature-x-")
    assert "schedule" in lines
    assert lines["retrain"] == "false"  # the example sets no retrain: the step installs no trigger


def test_errors_are_one_line_in_the_error_file_and_never_a_traceback(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.yaml").write_text("version: 1\nname: x\n")
    error = tmp_path / "error.txt"
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "validate", str(repo)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "MLTP_ERROR_FILE": str(error)})
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    text = error.read_text()
    assert text.count("\n") == 1 and "config.yaml:" in text


def test_no_credentials_and_no_local_suggests_local(tmp_path):
    """Forgetting --local is the common way to meet this: the message says so."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLTP_"))}
    env.update(AWS_CONFIG_FILE=str(tmp_path / "none"), AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_EC2_METADATA_DISABLED="true", MLTP_ERROR_FILE=str(tmp_path / "error.txt"))
    out = subprocess.run([sys.executable, "-m", "mltp.cli", "sync", str(EXAMPLE)], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 5, out.stderr
    assert "no AWS credentials found" in out.stderr and "mltp run --local" in out.stderr
    assert "Traceback" not in out.stderr
    assert "mltp run --local" in (tmp_path / "error.txt").read_text()


def test_the_collector_is_off_only_for_short_verbs():
    """The console script turns Python's cyclic collector off (a faster start);
    a verb that may run for hours turns it back on."""
    import gc

    import click

    from mltp import cli

    assert set(cli.SHORT_VERBS) <= set(cli.main.commands), "a short verb that is not a command"
    assert not {"wait", "run", "logs", "trigger", "fetch-model", "prune"} & cli.SHORT_VERBS
    try:
        for verb, collecting in (("start", False), ("publish", False), ("validate", False),
                                 ("wait", True), ("run", True), ("logs", True), ("trigger", True)):
            gc.disable()
            ctx = click.Context(cli.main)
            cli.main.resolve_command(ctx, [verb, "."])
            assert gc.isenabled() is collecting, verb
    finally:
        gc.enable()


def test_the_console_entry_runs_a_short_verb_with_the_collector_off(tmp_path):
    import subprocess
    import sys

    code = ("import atexit, gc, sys\n"
            "from mltp import cli\n"
            "atexit.register(lambda: print('collector', 'on' if gc.isenabled() else 'off'))\n"
            "cli.main([sys.argv[1], sys.argv[2]])\n")
    for verb, state in (("clean", "off"), ("logs", "on")):
        done = subprocess.run([sys.executable, "-c", code, verb, str(tmp_path)], capture_output=True, text=True)
        assert done.stdout.strip().splitlines()[-1] == f"collector {state}", (verb, done.stdout, done.stderr)
