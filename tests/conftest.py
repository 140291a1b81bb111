"""Shared fixtures: an AWS emulator reached over HTTP, and model repos to play with.

moto runs in server mode (ThreadedMotoServer on a free loopback port) so the
helper talks to it exactly as it talks to AWS: real HTTP, real botocore
serialization, retries and errors.
"""

import inspect
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Optional

import click.testing
import pytest

ROOT = Path(__file__).resolve().parent.parent

# click before 8.2 (what Python 3.9 resolves) mixes stderr into CliRunner's output
# unless told not to; the tests read result.stderr as click 8.2 gives it.
if "mix_stderr" in inspect.signature(click.testing.CliRunner.__init__).parameters:
    _cli_runner_init = click.testing.CliRunner.__init__

    def _stderr_apart(self, *args, mix_stderr=False, **kwargs):
        _cli_runner_init(self, *args, mix_stderr=mix_stderr, **kwargs)

    click.testing.CliRunner.__init__ = _stderr_apart
    # ... and, as in click 8.2, `output` is what a terminal shows: both streams.
    click.testing.Result.output = property(lambda self: self.stdout + (self.stderr if self.stderr_bytes else ""))

# The helper's caches (rendered definitions) go to a folder of this session, not
# the user's ~/.cache: tests start cold and leave nothing behind.
# Except the local environments of `run --local` (local/envs.py): building one
# with scikit-learn takes a minute, so they persist across sessions here, keyed
# by content like the real cache (MLTP_TEST_ENVS moves it).
# With parallel workers (pytest-xdist, `make test`) each worker is a process of its
# own that inherits the controller's environment: it gets a cache folder of its own
# too, so tests that count or corrupt cache entries never see another worker's.
_OWN_CACHE = os.environ.get("MLTP_TEST_OWN_CACHE")
if "MLTP_CACHE_DIR" not in os.environ or (
        os.environ.get("PYTEST_XDIST_WORKER") and os.environ["MLTP_CACHE_DIR"] == _OWN_CACHE):
    os.environ["MLTP_CACHE_DIR"] = os.environ["MLTP_TEST_OWN_CACHE"] = tempfile.mkdtemp(prefix="mltp-test-cache-")
    TEST_ENVS = Path(os.environ.get("MLTP_TEST_ENVS") or Path.home() / ".cache" / "mltp-test-envs")
    TEST_ENVS.mkdir(parents=True, exist_ok=True)
    os.symlink(str(TEST_ENVS), str(Path(os.environ["MLTP_CACHE_DIR"]) / "envs"))

# One OpenMP thread for the trainings the tests run (scikit-learn's, in the example
# and the compatibility runs; the jobs inherit it as they inherit the agent's
# environment): the suite already keeps every core busy with a worker each, and
# OpenMP's threads spin while they wait for a core, which tripled the example's CPU
# (test_local.py's run of it: 24.5 s of CPU and 41 s of wall, 8.1 s and 16 s with one
# thread, same result). What mltp does with a job does not depend on its threads.
# A step's own `environment` still sets its own.
os.environ.setdefault("OMP_NUM_THREADS", "1")
EXAMPLE = ROOT / "examples" / "fraud-detection"
FIXTURES = ROOT / "tests" / "fixtures"
REGION = "ap-northeast-2"
ACCOUNT = "123456789012"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a moto server shared by the session; tests use unique names."""
    from moto.server import ThreadedMotoServer

    from mltp.local.emulator import install_logs_extensions

    install_logs_extensions()  # as in local runs: saved queries, and exports by stream prefix
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.pop("AWS_PROFILE", None)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(moto_endpoint, monkeypatch):
    """Environment for code under test: fake credentials, emulator endpoint, no Jenkins vars."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    # moto holds no IAM roles for the models under test: tests/helper/test_preflight.py checks preflight.
    monkeypatch.setenv("MLTP_NO_PREFLIGHT", "1")
    for var in ("AWS_PROFILE", "BRANCH_NAME", "CHANGE_ID", "BRANCH_IS_PRIMARY", "BUILD_TAG", "BUILD_URL",
                "GIT_COMMIT", "MLTP_DEFAULT_BRANCH", "MLTP_RUN_NAME", "MLTP_CONFIG", "MLTP_REPORT_DIR"):
        monkeypatch.delenv(var, raising=False)
    return moto_endpoint


@pytest.fixture
def example_repo(tmp_path) -> Path:
    """A private copy of the example model repo (tests may edit it)."""
    target = tmp_path / "fraud-detection"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
    return target


# --------------------------------------------------------------------------- AWS calls of the control-plane tests
#
# Every call the helper makes while a recorded test runs is recorded with
# botocore's before-call event, together with the configs the test loaded and
# the role the call runs as, so tests/helper/test_iam_coverage.py can check each
# one against the policy `mltp iam-policy --role ROLE` prints for that config:
# the Jenkins identity's calls of the control-plane modules, the trigger
# function's calls of test_trigger.py.
# MLTP_RECORD_AWS_CALLS=FILE also writes them to FILE at the end of the session.

CONTROL_PLANE_MODULES = ("test_sync.py", "test_deploy.py", "test_runs.py", "test_wait.py", "test_cli.py",
                         "test_exit_codes.py", "test_preflight.py", "test_housekeeping.py", "test_notifications.py")
# Modules recorded for the calls of other roles (their Jenkins calls are not checked).
OTHER_ROLE_MODULES = ("test_trigger.py",)
RECORDED_MODULES = CONTROL_PLANE_MODULES + OTHER_ROLE_MODULES
# The role a call runs as, by the mltp file the test entered (the outermost mltp
# frame): the Jenkins identity unless named here. trigger_handler.py is the
# retraining trigger's Lambda function.
ROLE_OF_SOURCE = {"trigger_handler.py": "trigger"}
# mltp's clients name it in the user agent: aws.Clients 'mltp/<version>', the
# trigger's function 'mltp-trigger/<n>' (trigger_handler.USER_AGENT).
_MLTP_AGENT = re.compile(r"(^|\s)mltp(-[a-z]+)?/")
_HELPER_SOURCE = str(ROOT / "helper" / "src" / "mltp")
AWS_CALLS = {}  # test node id -> {"configs": [config.yaml texts], "calls": [{service, operation, params, role}]}
_CURRENT = {"test": None}


def _plain(params: dict) -> dict:
    """What identifies the resources: strings kept, anything else only as 'present'."""
    out = {k: v if isinstance(v, (str, int, float, bool)) else bool(v) for k, v in params.items()}
    if isinstance(params.get("Delete"), dict):  # DeleteObjects: each key is authorized on its own
        out["Delete"] = {"Objects": [{"Key": o["Key"]} for o in params["Delete"].get("Objects", [])]}
    return out


def _record_parameters(params, model, context, **_):
    context["mltp_params"] = _plain(params)


def _caller_role() -> Optional[str]:
    """The role of a call made by mltp's code, or None for a call a test makes to set
    up or check moto with the same clients. mltp's code made it when an mltp frame
    is on the stack, or when it runs in a worker thread (the S3 transfer manager
    that `sync` starts); its role is that of the outermost mltp frame's file."""
    import threading

    outermost = None
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_filename.startswith(_HELPER_SOURCE):
            outermost = os.path.basename(frame.f_code.co_filename)
        frame = frame.f_back
    if outermost is None:
        return "jenkins" if threading.current_thread() is not threading.main_thread() else None
    return ROLE_OF_SOURCE.get(outermost, "jenkins")


def _record_call(model, params, context, **_):
    """Only the helper's calls: its clients name mltp in the user agent."""
    test = _CURRENT["test"]
    agent = params.get("headers", {}).get("User-Agent", "")
    if test is None or not _MLTP_AGENT.search(agent):
        return
    role = _caller_role()
    if role is not None:
        AWS_CALLS[test]["calls"].append({"service": model.service_model.service_name, "operation": model.name,
                                         "params": context.get("mltp_params", {}), "role": role})


def _install_recorder() -> None:
    import botocore.session

    import mltp.config
    import mltp.config.loading

    original_init = botocore.session.Session.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.register("before-parameter-build", _record_parameters)
        self.register("before-call", _record_call)

    botocore.session.Session.__init__ = init
    original_parse = mltp.config.parse

    def parse(text, path, repo):
        result = original_parse(text, path, repo)
        if _CURRENT["test"] is not None and text not in AWS_CALLS[_CURRENT["test"]]["configs"]:
            AWS_CALLS[_CURRENT["test"]]["configs"].append(text)
        return result

    # load() calls parse() of its own module (mltp/config/loading.py); callers of mltp.config.parse get it too.
    mltp.config.loading.parse = mltp.config.parse = parse


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests `make test-quick` leaves out (SLOW_MODULES)")
    _install_recorder()


# Modules whose tests are end-to-end: whole local runs, environment builds,
# installs, a browser. `make test-quick` (-m "not slow") leaves them out; `make
# test` and CI run them all.
SLOW_MODULES = ("test_local.py", "test_local_inputs.py", "test_local_registry.py", "test_example_sagemaker_style.py",
                "test_shared_envs.py", "test_envs.py", "test_install_sh.py", "test_parity.py", "test_sandbox.py")


# With pytest-xdist the recorded calls live in the worker that made them, so the
# recorded modules and the coverage tests that read them form one unit of work,
# run by one worker in collection order (the readers last); the other tests are
# spread over the workers one by one (the scheduler below).
AWS_CALLS_GROUP = "aws-calls"


def pytest_collection_modifyitems(session, config, items):
    """The coverage test of recorded calls runs after the tests it reads."""
    last = [item for item in items if "recorded_calls" in item.name]
    items[:] = [item for item in items if item not in last] + last
    for item in items:
        if item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
    # The long tests first, the compatibility installs (the longest) before the end-to-end
    # modules (a stable sort: the order within each part stays): xdist hands out work in
    # this order, so the many short tests fill in at the end instead of a long test
    # keeping one worker busy alone while the other has nothing left.
    items.sort(key=_length_rank)


# Besides SLOW_MODULES, modules with some whole local runs among short tests (`make test-quick` keeps them).
LONG_TOO = ("test_step_cache.py", "test_spot.py", "test_algorithm_local.py", "test_job_env.py", "test_init.py")


def _length_rank(item) -> int:
    if item.path.parent.name == "compat":
        return 0
    return 1 if item.path.name in SLOW_MODULES + LONG_TOO else 2


def _work_unit(nodeid: str) -> str:
    module = nodeid.split("::")[0].rsplit("/", 1)[-1]
    return AWS_CALLS_GROUP if module in RECORDED_MODULES or "recorded_calls" in nodeid else nodeid


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: only called where it runs the tests
def pytest_xdist_make_scheduler(config, log):
    """xdist's per-scope scheduler with our units: the recorded group whole, every other
    test alone (as `--dist load`). A scheduler rather than xdist_group marks, whose
    node id suffix newer pytest versions do not take."""
    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadScopeScheduling

    class RecordedCallsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _work_unit(nodeid)

    return RecordedCallsTogether(config, log)


@pytest.fixture(autouse=True)
def _aws_call_recorder(request):
    if request.node.path.name in RECORDED_MODULES:
        _CURRENT["test"] = request.node.nodeid
        AWS_CALLS.setdefault(request.node.nodeid, {"configs": [], "calls": []})
    try:
        yield
    finally:
        _CURRENT["test"] = None


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("MLTP_RECORD_AWS_CALLS")
    # With xdist only the worker that ran the recorded group holds calls (the controller none).
    if target and (AWS_CALLS or not getattr(session.config.option, "numprocesses", None)):
        import json

        Path(target).write_text(json.dumps(AWS_CALLS), encoding="utf-8")
