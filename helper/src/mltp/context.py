"""Who is running and for which branch: Jenkins' environment and the CLI options
turned into one RunContext that every verb shares (docs/contract.md, 7.1 and 9.2)."""

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

from . import naming, owned
from .config import Config

PRIMARY_BRANCHES = ("main", "master")


@dataclass(frozen=True)
class RunContext:
    config: Config
    branch: str  # "" outside a multibranch job
    is_default_branch: bool
    is_pull_request: bool
    state_machine: str
    run_name: str
    git_commit: str
    build_url: str
    region: str
    endpoint_url: Optional[str]
    report_dir: Path

    @property
    def register(self) -> bool:
        """Only the default branch registers models; branches and PRs only gate."""
        return self.is_default_branch and not self.is_pull_request


def is_default_branch(env: Mapping[str, str]) -> bool:
    """Jenkins' branch-api sets BRANCH_IS_PRIMARY on the repository's default
    branch; MLTP_DEFAULT_BRANCH names it explicitly; a job that is not
    multibranch (no BRANCH_NAME) is treated as the default branch."""
    if env.get("CHANGE_ID"):
        return False
    branch = env.get("BRANCH_NAME", "")
    explicit = env.get("MLTP_DEFAULT_BRANCH", "")
    if explicit:
        return branch == explicit or not branch
    if env.get("BRANCH_IS_PRIMARY", "").lower() == "true":
        return True
    if not branch:
        return True
    if "BRANCH_IS_PRIMARY" in env:
        return False
    return branch in PRIMARY_BRANCHES


def _git_commit(repo: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def default_run_name(config: Config, env: Mapping[str, str]) -> str:
    """BUILD_TAG ('jenkins-folder-job-42') names the run, so a retried or
    re-attached build finds its execution; outside Jenkins, a timestamp."""
    tag = env.get("BUILD_TAG")
    if tag:
        return naming.run_name(tag)
    return naming.run_name(f"{config.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")


def make_context(
    config: Config,
    run_name: Optional[str] = None,
    region: Optional[str] = None,
    endpoint_url: Optional[str] = None,
    report_dir: Optional[str] = None,
    env: Optional[Mapping[str, str]] = None,
) -> RunContext:
    env = os.environ if env is None else env
    config = naming.pinned_branch_role(config, env)  # an admin's pin wins over config.yaml
    branch = env.get("BRANCH_NAME", "")
    default = is_default_branch(env)
    pull_request = bool(env.get("CHANGE_ID"))
    name = naming.run_name(run_name) if run_name else default_run_name(config, env)
    machine = naming.state_machine_name(config, branch, default)
    # Reports (the Jenkins step's too) and local work folders go under .mltp/: through
    # a committed symlink they would land, and be deleted, wherever it points.
    owned.check_state(config.repo)
    if report_dir:
        reports = Path(report_dir)
    else:
        reports = owned.owned_dir(config.repo, "runs", name)  # not written through a link
    return RunContext(
        config=config,
        branch=branch,
        is_default_branch=default,
        is_pull_request=pull_request,
        state_machine=machine,
        run_name=name,
        git_commit=env.get("GIT_COMMIT") or _git_commit(config.repo),
        build_url=env.get("BUILD_URL", ""),
        region=region or config.aws.region,
        endpoint_url=endpoint_url or env.get("AWS_ENDPOINT_URL") or None,
        report_dir=reports,
    )
