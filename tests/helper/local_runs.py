"""Local runs of the tiny model shared by the tests that only read what a run left.

A whole `mltp run --local` costs several seconds of CPU (the embedded emulator,
three job processes, the report), and more on a loaded machine. Several tests
look at one situation from different sides: test_local.py checks what a user
sees of a training script that raises, test_parity.py that the state machine
on AWS ends the same situation with the same line. So each situation runs once
per session, as a user runs it (a subprocess, `mltp run . --local`), and every
test of it reads the kept result: the exit code, both streams, the error file
and the repo with its .mltp/ folder.

The runs are kept in a folder of the session that its xdist workers share
(beside their own temporary folders); the first test that needs a situation
runs it under a lock of that situation, so a second worker that needs it at
the same time waits for that run instead of making another. A test that reads
a shared run must not change its repo.

The situations are the tiny model (tests/fixtures/tiny) with its evaluation.py
given the extra modes the parity suite needs (which change nothing for the
other modes), its MODE variables and config edits; `SITUATIONS` names them.
"""

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Dict, NamedTuple, Optional

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "fixtures" / "tiny"
JENKINS_VARS = ("BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL", "GIT_COMMIT",
                "AWS_ENDPOINT_URL", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR", "MLTP_ERROR_FILE")
RUN_NAME = "local-test"

# evaluation.py modes the fixture lacks: a file that is not JSON at all, Infinity, SageMaker's model-quality format.
EXTRA_EVALUATION_MODES = '''elif mode == "not-json":
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        f.write("{'metrics': oops")
elif mode == "infinite":  # valid JSON that every parser reads as Infinity
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        f.write('{"metrics": {"auc": {"value": 1e999}}}')
elif mode == "model-quality":
    with open(os.path.join(out, "evaluation.json"), "w") as f:
        json.dump({"regression_metrics": {"mse": {"value": 4.3}}, "binary_classification_metrics": {
            "auc": {"value": model["score"]}, "confusion_matrix": {"0": {"0": 1}}}}, f)
'''


class Situation(NamedTuple):
    modes: Dict[str, str] = {}                         # step -> MODE of tiny's scripts
    config_edit: Optional[Callable[[str], str]] = None  # config.yaml text -> text
    requirements: Optional[str] = None                  # requirements.txt, when the repo has one
    arrange: Optional[Callable[[Path], None]] = None    # anything else in the repo before the run


def set_mode(text: str, step: str, mode: str) -> str:
    return re.sub(rf"(  {step}:\n(?:    .*\n)*?    environment: {{MODE: )ok}}", rf"\g<1>{mode}}}", text)


def make_repo(target: Path, situation: Situation) -> Path:
    """A copy of the tiny model set up for the situation (the parity suite's AWS side uses one too)."""
    shutil.copytree(TINY, target)
    evaluation = target / "evaluation.py"
    evaluation.write_text(evaluation.read_text().replace("else:\n", EXTRA_EVALUATION_MODES + "else:\n", 1))
    text = (target / "config.yaml").read_text()
    for step, mode in situation.modes.items():
        text = set_mode(text, step, mode)
    if situation.config_edit:
        text = situation.config_edit(text)
    (target / "config.yaml").write_text(text)
    if situation.requirements is not None:
        (target / "requirements.txt").write_text(situation.requirements)
    if situation.arrange:
        situation.arrange(target)
    return target


def _earlier_work_folders(repo: Path) -> None:
    """Six earlier runs' job folders, oldest first: the run keeps the last 5, itself included."""
    work = repo / ".mltp" / "work"
    for i in range(6):
        (work / f"old-{i}").mkdir(parents=True)
        os.utime(work / f"old-{i}", (1_000_000 + i, 1_000_000 + i))


# The situations more than one test reads. test_local.py and test_parity.py name them.
SITUATIONS = {
    "pass": Situation(),
    "gate missed": Situation(config_edit=lambda t: t.replace("score: 0.93", "score: 0.42")),
    "metric not a number": Situation(modes={"evaluation": "bad-json"}),
    "failing script": Situation(modes={"training": "raise"}),
    # the earlier job folders are for test_local's check of what .mltp/work/ keeps; nothing else reads them
    "missing package": Situation(modes={"preprocessing": "missing-import"}, arrange=_earlier_work_folders),
    "requirements.txt that fails to install": Situation(requirements="mltp-no-such-package-anywhere==0.0.1\n"),
    "empty model": Situation(modes={"training": "no-model"}),
}


class Run(NamedTuple):
    proc: subprocess.CompletedProcess  # returncode, stdout, stderr of `mltp run . --local`
    error: str                         # what it wrote to MLTP_ERROR_FILE
    report: Path                       # .mltp/runs/<run name>

    @property
    def repo(self) -> Path:
        return self.report.parents[2]


def run_local(repo: Path, *args: str, run_name: str = RUN_NAME, timeout: int = 300):
    """`mltp run . --local` in REPO as a user runs it, without the Jenkins variables."""
    env = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    env["MLTP_ERROR_FILE"] = str(repo / "error.txt")
    proc = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", run_name, *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    error = (repo / "error.txt").read_text() if (repo / "error.txt").exists() else ""
    return proc, error, repo / ".mltp" / "runs" / run_name


def shared_root(tmp_path_factory) -> Path:
    """A folder of this session that all its xdist workers see (each worker's own basetemp is below it)."""
    base = tmp_path_factory.getbasetemp()
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared-local-runs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def shared_run(tmp_path_factory, name: str) -> Run:
    """The run of situation NAME, made by the first test of the session that asks for it."""
    situation = SITUATIONS[name]
    root = shared_root(tmp_path_factory)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    folder, result = root / slug, root / slug / "result.json"
    with open(root / f"{slug}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also if the run raises
        if not result.is_file():
            shutil.rmtree(folder, ignore_errors=True)  # a run that broke off (a timeout) leaves nothing half made
            repo = make_repo(folder / "tiny", situation)
            proc, error, report = run_local(repo)
            result.write_text(json.dumps({"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr,
                                          "args": proc.args, "error": error}), encoding="utf-8")
    data = json.loads(result.read_text(encoding="utf-8"))
    proc = subprocess.CompletedProcess(data["args"], data["returncode"], data["stdout"], data["stderr"])
    return Run(proc, data["error"], folder / "tiny" / ".mltp" / "runs" / RUN_NAME)
