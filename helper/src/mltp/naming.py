"""Every name mltp derives: state machines, runs, jobs and S3 locations.

AWS limits drive the shapes here: state machine and execution names are at most
80 characters, SageMaker job names at most 63 of [a-zA-Z0-9-]. Branch names and
Jenkins build tags can contain anything, so they are slugged and, when the slug
had to change or shorten them, suffixed with a short hash so two branches never
share a state machine.
"""

import hashlib
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Dict, Mapping, Optional

from . import spot
from .config import Config
from .errors import InvalidInput

STATE_MACHINE_MAX = 80
EXECUTION_MAX = 80
JOB_MAX = 63
BRANCH_SEPARATOR = "--"
JOB_ABBREV = {"preprocessing": "prep", "training": "train", "evaluation": "eval"}
# The one CloudWatch Logs group all state machines log to (deploy.py says why).


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def slug(text: str, max_length: int, allowed: str = "a-z0-9") -> str:
    """Runs of characters outside `allowed` become one '-' (lower-cased first when
    `allowed` has no capitals), trimmed to max_length. Appends '-<hash>' whenever
    the text had to change, so distinct inputs stay distinct."""
    lowered = text if "A-Z" in allowed else text.lower()
    cleaned = re.sub(f"[^{allowed}]+", "-", lowered).strip("-")
    if cleaned == text and len(cleaned) <= max_length and cleaned:
        return cleaned
    suffix = _digest(text, 6)
    room = max_length - len(suffix) - 1
    head = cleaned[:room].rstrip("-")
    return f"{head}-{suffix}" if head else suffix


def branch_slug(config: Config, branch: str) -> str:
    room = STATE_MACHINE_MAX - len(config.name) - len(BRANCH_SEPARATOR)
    return slug(branch, room)


def state_machine_name(config: Config, branch: str, is_default: bool) -> str:
    """`<name>` on the default branch, `<name>--<branch slug>` elsewhere (docs/contract.md, 5.2)."""
    if is_default:
        return config.name
    return f"{config.name}{BRANCH_SEPARATOR}{branch_slug(config, branch)}"


def run_name(raw: str) -> str:
    """An execution name from a Jenkins BUILD_TAG or a user's --run-name."""
    return slug(raw, EXECUTION_MAX, allowed="a-zA-Z0-9_-")


def job_name(config: Config, state_machine: str, run: str, role: str) -> str:
    """`<name>-<step>-<id>`: readable in the SageMaker console, unique per state
    machine and run (SageMaker job names are unique per account and region)."""
    run_id = _digest(f"{state_machine}/{run}", 12)
    return f"{config.name}-{JOB_ABBREV[role]}-{run_id}"


def model_prefix(config: Config) -> str:
    """`<prefix>/<name>/`: everything of one model lives under it (docs/contract.md, 6)."""
    return f"{config.aws.prefix}/{config.name}/"


def branch_of(config: Config, state_machine: Optional[str]) -> Optional[str]:
    """The branch slug of a branch's or pull request's state machine (`<name>--<slug>`),
    None for the default branch's (`<name>`). Slugs hold only [a-z0-9-], never '/',
    so `.../<slug>/` of two branches never nest and never reach outside `branches/`."""
    if not state_machine or state_machine == config.name:
        return None
    return state_machine[len(config.name) + len(BRANCH_SEPARATOR):] or _digest(state_machine, 12)


def code_prefix(config: Config, content_hash: str, state_machine: Optional[str] = None) -> str:
    """`<prefix>/<name>/code/<hash>/` for the default branch's state machine,
    `<prefix>/<name>/code/branches/<branch slug>/<hash>/` for any other: code a
    branch or pull request build uploads never lands where the default branch's
    scheduled retrain reads its code."""
    branch = branch_of(config, state_machine)
    if branch:
        return f"{model_prefix(config)}code/branches/{branch}/{content_hash}/"
    return f"{model_prefix(config)}code/{content_hash}/"


def run_prefix(config: Config, run: str, state_machine: Optional[str] = None) -> str:
    """`<prefix>/<name>/runs/<run>/` for the default branch's runs,
    `<prefix>/<name>/branches/<branch slug>/runs/<run>/` for a branch's or pull
    request's. Each prefix is written by the jobs of its own kind of build only:
    the default SageMaker role may write `runs/*`, the branch role
    `branches/*/runs/*` (policies.py), so a pull request's job can neither read nor
    overwrite what a default-branch run produces. `branches/` is a sibling of
    `runs/`, not inside it: a run name can never make the two meet."""
    branch = branch_of(config, state_machine)
    if branch:
        return f"{model_prefix(config)}branches/{branch}/runs/{run}/"
    return f"{model_prefix(config)}runs/{run}/"


def job_role_arn(config: Config, state_machine: Optional[str]) -> str:
    """The role the jobs of this state machine run as: aws.branch_sagemaker_role_arn
    for a branch's or pull request's when it is set, else aws.sagemaker_role_arn."""
    if branch_of(config, state_machine) and config.aws.branch_sagemaker_role_arn:
        return config.aws.branch_sagemaker_role_arn
    return config.aws.sagemaker_role_arn


BRANCH_ROLE_VARIABLE = "MLTP_BRANCH_SAGEMAKER_ROLE_ARN"
_ROLE_ARN = re.compile(r"^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::[0-9]{12}:role/([\w+=,.@-]+/)*[\w+=,.@-]{1,64}$")


def pinned_branch_role(config: Config, env: Mapping[str, str]) -> Config:
    """The config with aws.branch_sagemaker_role_arn taken from MLTP_BRANCH_SAGEMAKER_ROLE_ARN
    when that is set: an admin sets it on the Jenkins folder or agent, where a pull
    request's config.yaml cannot drop or rewrite it (docs/trust.md)."""
    pinned = env.get(BRANCH_ROLE_VARIABLE, "")
    if not pinned:
        return config
    if not _ROLE_ARN.match(pinned) or pinned.split(":")[1:5:3] != config.aws.sagemaker_role_arn.split(":")[1:5:3]:
        raise InvalidInput(f"{BRANCH_ROLE_VARIABLE}={pinned}: must be an IAM role ARN in the account of "
                           f"aws.sagemaker_role_arn ({config.where('aws.sagemaker_role_arn')})")
    return replace(config, aws=replace(config.aws, branch_sagemaker_role_arn=pinned))


def definition_config(config: Config, state_machine: Optional[str]) -> Config:
    """The config the definition of this state machine is rendered from: its jobs'
    role in aws.sagemaker_role_arn (the definition names that role in every job)."""
    role = job_role_arn(config, state_machine)
    if role == config.aws.sagemaker_role_arn:
        return config
    return replace(config, aws=replace(config.aws, sagemaker_role_arn=role))


def registry_prefix(config: Config, run: str) -> str:
    """`<prefix>/<name>/registry/<run>/`: where the state machine copies a registered
    run's model.tar.gz and evaluation.json before registering them. Only the
    states role writes here, no job role can: the version's artifacts cannot be
    swapped after the gate passed them (docs/trust.md)."""
    return f"{model_prefix(config)}registry/{run}/"


@dataclass(frozen=True)
class RunArtifacts:
    """Where a run's model and evaluation.json land: they depend on the run
    (and its training job name), not on the code."""

    model: str  # <runs>/model/<training job>/output/model.tar.gz
    evaluation: str  # <runs>/evaluation/evaluation.json
    registry_model: str  # <registry>/model.tar.gz: the copy a registered version names
    registry_evaluation: str  # <registry>/evaluation.json


def run_artifacts(config: Config, state_machine: str, run: str) -> RunArtifacts:
    s3 = f"s3://{config.aws.bucket}/"
    runs = f"{s3}{run_prefix(config, run, state_machine)}"
    registry = f"{s3}{registry_prefix(config, run)}"
    training_job = job_name(config, state_machine, run, "training")
    return RunArtifacts(model=f"{runs}model/{training_job}/output/model.tar.gz",
                        evaluation=f"{runs}evaluation/evaluation.json",
                        registry_model=f"{registry}model.tar.gz",
                        registry_evaluation=f"{registry}evaluation.json")


def metadata_value(text: str) -> str:
    """A value CreateModelPackage accepts in CustomerMetadataProperties: 1 to 256 of
    letters, digits, spaces and _.:/=+-@ (so '%', '?', '#', '~' become '_'), never
    empty. Jenkins URLs of branch jobs hold '%', and a commit may be unknown: the
    Register step must not fail on them after hours of training."""
    cleaned = re.sub(r"[^\w\s.:/=+\-@]", "_", text or "")[:256]
    return cleaned if cleaned.strip() else "unknown"


def tag_value(text: str) -> str:
    """A tag value SageMaker and Step Functions accept ([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*,
    at most 256): a legal git branch such as 'fix/#12,crash&burn' becomes
    'fix/_12_crash_burn', a 300-character one is cut, so `deploy` never fails on it."""
    return re.sub(r"[^\w .:/=+@-]|[\u0080-\u00a0]", "_", text or "")[:256]


@dataclass(frozen=True)
class ExecutionInput:
    """The execution input the state machine reads (as $$.Execution.Input.<Key>).

    Everything that differs between runs travels here, so the definition stays
    byte-identical across runs and `deploy` can say "unchanged"."""

    RunName: str
    Register: bool
    GitCommit: str
    BuildUrl: str
    Branch: str
    PreprocessingJobName: str
    TrainingJobName: str
    EvaluationJobName: str
    CodeS3Uri: str  # the code bundle's files, mounted into processing jobs
    SourceDirS3Uri: str  # the same files as sourcedir.tar.gz, for the training job
    TrainDataS3Uri: str
    ValidationDataS3Uri: str
    TestDataS3Uri: str
    ModelOutputS3Uri: str  # training job's S3OutputPath
    ModelArtifactS3Uri: str  # <ModelOutputS3Uri><TrainingJobName>/output/model.tar.gz
    EvaluationOutputS3Uri: str
    EvaluationS3Uri: str  # .../evaluation.json
    EvaluationBucket: str
    EvaluationKey: str
    # Registration copies the two artifacts out of the jobs' reach first (CopyObject,
    # as the states role) and registers the copies: <bucket>/<key> sources, and
    # the registry keys and URIs of the copies (registry_prefix).
    ModelArtifactCopySource: str
    EvaluationCopySource: str
    RegistryModelKey: str
    RegistryEvaluationKey: str
    RegistryModelS3Uri: str
    RegistryEvaluationS3Uri: str
    # The folder of every preprocessing output: <PreprocessingS3Uri><output name>/
    # (train, validation and test also have their keys above, as before).
    PreprocessingS3Uri: str = ""
    # The champion (newest Approved version of the group) as found at start:
    # {"Version", "Arn", "Metrics": {metric: value}, "Bars": {metric: value to reach}},
    # or {"Reason": why there is none}. The Gate reads $.Champion.Bars.
    Champion: Dict[str, Any] = field(default_factory=dict)
    # The step cache's decisions for this run (plan.Plan.cache_input): the keys of
    # the cached steps, and `reuse`, the steps taken from earlier runs, which the
    # Reuse<Step> states skip. Empty: every step runs.
    Cache: Dict[str, Any] = field(default_factory=dict)
    # Managed spot training's checkpoints (spot.py): <runs>checkpoints/, under the run.
    CheckpointS3Uri: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def execution_input(
    config: Config,
    state_machine: str,
    run: str,
    content_hash: str,
    register: bool,
    git_commit: str = "",
    build_url: str = "",
    branch: str = "",
    champion: Optional[Dict[str, Any]] = None,
) -> ExecutionInput:
    bucket = config.aws.bucket
    code = code_prefix(config, content_hash, state_machine)
    runs = run_prefix(config, run, state_machine)
    s3 = f"s3://{bucket}/"
    jobs = {role: job_name(config, state_machine, run, role) for role in JOB_ABBREV}
    artifacts = run_artifacts(config, state_machine, run)
    evaluation_key = artifacts.evaluation[len(s3):]
    return ExecutionInput(
        RunName=run,
        Register=register,
        GitCommit=metadata_value(git_commit),
        BuildUrl=metadata_value(build_url),
        Branch=branch,
        PreprocessingJobName=jobs["preprocessing"],
        TrainingJobName=jobs["training"],
        EvaluationJobName=jobs["evaluation"],
        CodeS3Uri=f"{s3}{code}src/",
        SourceDirS3Uri=f"{s3}{code}sourcedir.tar.gz",
        TrainDataS3Uri=f"{s3}{runs}preprocessing/train/",
        ValidationDataS3Uri=f"{s3}{runs}preprocessing/validation/",
        TestDataS3Uri=f"{s3}{runs}preprocessing/test/",
        PreprocessingS3Uri=f"{s3}{runs}preprocessing/",
        ModelOutputS3Uri=f"{s3}{runs}model/",
        ModelArtifactS3Uri=artifacts.model,
        EvaluationOutputS3Uri=f"{s3}{runs}evaluation/",
        EvaluationS3Uri=artifacts.evaluation,
        EvaluationBucket=bucket,
        EvaluationKey=evaluation_key,
        ModelArtifactCopySource=f"{bucket}/{artifacts.model[len(s3):]}",
        EvaluationCopySource=f"{bucket}/{evaluation_key}",
        RegistryModelKey=artifacts.registry_model[len(s3):],
        RegistryEvaluationKey=artifacts.registry_evaluation[len(s3):],
        RegistryModelS3Uri=artifacts.registry_model,
        RegistryEvaluationS3Uri=artifacts.registry_evaluation,
        Champion=dict(champion or {}),
        CheckpointS3Uri=spot.checkpoint_uri(f"{s3}{runs}"),
    )
