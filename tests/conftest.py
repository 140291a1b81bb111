"""Shared fixtures: an AWS emulator reached over HTTP, and model repos to play with.

moto runs in server mode (ThreadedMotoServer on a free loopback port) so the
helper talks to it exactly as it talks to AWS: real HTTP, real botocore
serialization, retries and errors.
"""

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
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
