"""Managed spot training (`steps.training.spot`, docs/contract.md 3.3).

With `spot: {max_wait_minutes: N}` the training job asks for spot capacity
(EnableManagedSpotTraining): SageMaker may stop it when the capacity is taken
back and starts it again later, within MaxWaitTimeInSeconds (the wait for
capacity plus the run). Whatever the script wrote to /opt/ml/checkpoints is
copied to CheckpointConfig.S3Uri while the job runs, and copied back into that
folder when the job starts again: a script that saves its progress there and
reads it back at start resumes where it was stopped instead of starting over.

The checkpoints live under the run (`<run prefix>checkpoints/`), where the
run's jobs write already: the job roles' policies (policies.py) cover them,
and a branch's run keeps its checkpoints under its own branch prefix.

The sagemaker-training toolkit sets no variable for the checkpoint folder (it
has no SM_CHECKPOINT_DIR); scripts use the literal path, as on SageMaker, and a
local run gives them that path in the job's namespace (local/runner.py).
"""

from typing import Any, List

from .yaml_source import Document, Problem, key_path

CHECKPOINT_LOCAL_PATH = "/opt/ml/checkpoints"
CHECKPOINT_FOLDER = "checkpoints/"  # under the run prefix
SPOT_KEY = ("steps", "training", "spot")
WAIT_KEY = SPOT_KEY + ("max_wait_minutes",)
RUNTIME_KEY = ("steps", "training", "max_runtime_minutes")
# The schema's default of steps.training.max_runtime_minutes (config_schema._step).
DEFAULT_TRAINING_RUNTIME = 120


def problems(doc: Document) -> List[Problem]:
    """A wait shorter than the run: SageMaker refuses MaxWaitTimeInSeconds below
    MaxRuntimeInSeconds, which would fail the run at the Training step, after
    preprocessing. Said at validate, naming both keys and where they are."""
    data: Any = doc.value
    steps = data.get("steps") if isinstance(data, dict) else None
    training = steps.get("training") if isinstance(steps, dict) else None
    spot = training.get("spot") if isinstance(training, dict) else None
    if not isinstance(spot, dict):
        return []
    wait = spot.get("max_wait_minutes")
    runtime = training.get("max_runtime_minutes", DEFAULT_TRAINING_RUNTIME)
    if not _integer(wait) or not _integer(runtime) or wait >= runtime:
        return []
    where = f"line {doc.lines[RUNTIME_KEY]}" if RUNTIME_KEY in doc.lines else "the default"
    return [Problem(doc.line_of(WAIT_KEY), key_path(WAIT_KEY),
                    f"{wait} is below {key_path(RUNTIME_KEY)} ({runtime}, {where}): the wait for spot capacity "
                    f"includes the run, so SageMaker needs max_wait_minutes >= max_runtime_minutes")]


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def checkpoint_uri(run_uri: str) -> str:
    """s3://<bucket>/<run prefix>checkpoints/ from s3://<bucket>/<run prefix>."""
    return f"{run_uri}{CHECKPOINT_FOLDER}"
