"""Runs resources/mltp/install.sh and helper.sh as the Jenkins steps do: a real
/bin/sh, values only in the environment (the variables vars/mltpHelper.groovy
sets). Shared by the install script's tests and the compatibility test."""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

ROOT = Path(__file__).resolve().parent.parent
RESOURCES = ROOT / "resources" / "mltp"
INSTALL_SH = RESOURCES / "install.sh"
HELPER_SH = RESOURCES / "helper.sh"
LOCKS = {"aws": RESOURCES / "requirements-aws.txt", "local": RESOURCES / "requirements-local.txt"}


def bundled_wheel() -> Path:
    return RESOURCES / (RESOURCES / "bundle.txt").read_text().strip()


@dataclass
class Installed:
    rc: int
    output: str          # stdout and stderr, as the build log shows them
    error: str           # the one-line reason in MLTP_ERROR_FILE
    mltp: Optional[str]  # the helper's path, from MLTP_INSTALL_OUT


def base_env(**extra: str) -> Dict[str, str]:
    """A clean agent environment: no variables of this test process leak in."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "PIP_CACHE_DIR", "PYENV_ROOT") if k in os.environ}
    env.update(extra)
    return env


def install(python: str, cache: Path, scratch: Path, lock: str = "local", wheel: Optional[Path] = None,
            requirements: Optional[Path] = None, pip_spec: Optional[str] = None, timeout: float = 900,
            **extra: str) -> Installed:
    scratch.mkdir(parents=True, exist_ok=True)
    out, error = scratch / "helper-path.txt", scratch / "error.txt"
    env = base_env(MLTP_INSTALL_PYTHON=python, MLTP_INSTALL_OUT=str(out), MLTP_ERROR_FILE=str(error),
                   MLTP_CACHE_DIR=str(cache), **extra)
    if pip_spec:
        env["MLTP_INSTALL_PIP_SPEC"] = pip_spec
    else:
        env["MLTP_INSTALL_WHEEL"] = str(wheel or bundled_wheel())
        env["MLTP_INSTALL_REQUIREMENTS"] = str(requirements or LOCKS[lock])
    done = subprocess.run(["/bin/sh", str(INSTALL_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return Installed(
        rc=done.returncode,
        output=done.stdout,
        error=error.read_text().strip() if error.exists() else "",
        mltp=out.read_text().strip() if out.exists() else None,
    )


def run_verb(mltp: str, verb: str, repo: Path, scratch: Path, timeout: float = 600,
             **extra: str) -> subprocess.CompletedProcess:
    """One verb through helper.sh, with the environment the step gives it, in the repo (the workspace)."""
    env = base_env(MLTP=mltp, MLTP_VERB=verb, MLTP_REPO=str(repo), MLTP_ERROR_FILE=str(scratch / "error.txt"),
                   MLTP_INFO_FILE=str(scratch / "info.txt"), PYTHONUNBUFFERED="1", **extra)
    return subprocess.run(["/bin/sh", str(HELPER_SH)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=repo)


def run_helper(mltp: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The helper called directly (verbs the steps do not run, such as render), stdout and stderr apart."""
    return subprocess.run([mltp, *args], env=base_env(), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
