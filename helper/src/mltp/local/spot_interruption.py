"""Managed spot training in a local run: the checkpoint folder, and a simulated
interruption (`mltp run --local --interrupt-spot-after SECONDS`).

What SageMaker does with a spot job's CheckpointConfig, done here the same way:
when the job starts, whatever is under CheckpointConfig.S3Uri is copied into
LocalPath (/opt/ml/checkpoints); what the script writes there is copied back to
S3Uri (on SageMaker while the job runs; here when an attempt ends, whatever its
end). The folder itself is the job's `opt/ml/checkpoints` in the run's work
folder (`.mltp/work/<run>/<job>/opt/ml/checkpoints`), which is /opt/ml/checkpoints
in the job's namespace and stays after the run.

An interruption: SageMaker stops the instance when the spot capacity is taken
back, after sending SIGTERM and waiting up to 120 seconds, and starts the job
again on a new instance later, with the checkpoints copied back. Locally the
first spot training job of the run gets SIGTERM at the given time (the job's
whole process group: the toolkit and the script), SIGKILL if it is still there
after the grace, and is started again at once with its checkpoint folder kept
and its model folder empty, as on a fresh instance. Only once per run: the
point is to see that train.py resumes from what it saved.

The toolkit sets no SM_CHECKPOINT_DIR (it has none), so neither does this: a
script uses /opt/ml/checkpoints, the path CheckpointConfig names.
"""

import shutil
import signal
import subprocess
from pathlib import Path
from typing import Callable, Optional

from ..spot import CHECKPOINT_LOCAL_PATH


def check_option(config) -> None:
    """--interrupt-spot-after needs a spot training job to interrupt: exit 2 otherwise."""
    from ..errors import InvalidInput

    if config.steps.training.spot is None:
        raise InvalidInput(f"--interrupt-spot-after interrupts a managed spot training job, and {config.where('steps.training')} "
                           f"sets no steps.training.spot (add spot: {{max_wait_minutes: N}} under steps.training)")


class Checkpoints:
    """A training job's checkpoint folder and its S3 location."""

    def __init__(self, runner, local: Path, uri: str, container_path: str):
        self.runner = runner
        self.local = local
        self.uri = uri if uri.endswith("/") else uri + "/"
        self.container_path = container_path

    @classmethod
    def of(cls, runner, root: Path, request: dict) -> Optional["Checkpoints"]:
        config = request.get("CheckpointConfig") or {}
        uri = config.get("S3Uri")
        if not uri:
            return None
        container_path = config.get("LocalPath") or CHECKPOINT_LOCAL_PATH
        local = runner._local(root, container_path)
        local.mkdir(parents=True, exist_ok=True)
        return cls(runner, local, uri, container_path)

    def restore(self) -> int:
        """S3Uri's objects into the folder, as a (re)starting job finds them; how many."""
        bucket, _, prefix = self.uri[len("s3://"):].partition("/")
        s3 = self.runner.clients.s3
        count = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                rel = item["Key"][len(prefix):]
                dest = self.local / rel
                if not rel or item["Key"].endswith("/") or not _same_or_inside(dest.resolve(), self.local.resolve()):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                s3.download_file(bucket, item["Key"], str(dest))
                count += 1
        return count

    def save(self) -> None:
        """The folder's files to S3Uri (files only: a link the job left is not followed)."""
        if self.local.is_dir() and not self.local.is_symlink():
            self.runner._upload_dir(self.local, self.uri)


def stop(proc: subprocess.Popen, grace: float, signal_job: Callable[[subprocess.Popen, int], None]) -> str:
    """SIGTERM to the job's process group, SIGKILL after `grace` seconds; its output."""
    signal_job(proc, signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        signal_job(proc, signal.SIGKILL)
        output, _ = proc.communicate()
    return output or ""


def fresh_instance(base: Path, keep: Optional[Path]) -> None:
    """What a new instance has of the job's /opt/ml: no model, no output data;
    the checkpoint folder (`keep`) is not touched."""
    for folder in (base / "model", base / "output" / "data"):
        if keep is not None and _same_or_inside(keep, folder):
            continue
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)


def _same_or_inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def notice(job_name: str, seconds: Optional[float], grace: float, checkpoints: Optional[Checkpoints]) -> str:
    kept = (f"{checkpoints.container_path} kept ({checkpoints.uri})" if checkpoints
            else "no checkpoint folder (the job has no CheckpointConfig)")
    return (f"local: spot interruption: training job {job_name} stopped after {seconds:g} s (SIGTERM, SIGKILL after "
            f"{grace:g} s, as SageMaker does when spot capacity is taken back); starting it again with {kept}")


def not_reached(job_name: str, seconds: float) -> str:
    return (f"local: spot interruption: training job {job_name} ended before {seconds:g} s, so it was not interrupted "
            f"(a smaller --interrupt-spot-after tests the resume)")


def log_line(job_name: str) -> str:
    """The line between the two attempts in the job's log."""
    return f"\n[mltp] spot interruption: {job_name} was stopped; it starts again with its checkpoints\n"
