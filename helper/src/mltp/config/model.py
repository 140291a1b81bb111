"""The typed config objects: what config.yaml version 1 says, once loaded and
checked (loading.py), with the schema's defaults filled in."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

from ..config_schema import PROCESSING_ROOT
from .display import display

Scalar = Union[str, int, float, bool]
STEP_ROLES = ("preprocessing", "training", "evaluation")


# Container paths of the processing jobs that config.yaml does not set
# (docs/contract.md, 3.1). The code bundle is always put in CODE_DIR.
INPUT_DIR = f"{PROCESSING_ROOT}/input"
OUTPUT_DIR = f"{PROCESSING_ROOT}/output"
CODE_DIR = f"{INPUT_DIR}/code"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class InputConfig:
    name: str
    source: str
    destination: str = ""  # where the job finds it; "" means the default (see `path`)
    local: Optional[str] = None  # what a local run serves at `source` (inputs[].local)

    @property
    def path(self) -> str:
        """The input's folder inside the processing container."""
        return self.destination or f"{INPUT_DIR}/{self.name}"


@dataclass(frozen=True)
class ChannelConfig:
    """One input channel of the training job (steps.training.channels): the data of
    a preprocessing output (`output`) or of an S3 prefix preprocessing does not
    produce (`s3_uri`), at /opt/ml/input/data/<name>."""

    name: str
    output: Optional[str] = None
    s3_uri: Optional[str] = None
    content_type: Optional[str] = None
    local: Optional[str] = None  # what a local run serves at s3_uri (like inputs[].local)


@dataclass(frozen=True)
class MetricDefinition:
    """A metric read from the training job's log (SageMaker's MetricDefinition):
    the regex's first group is the value; the last match is the metric's value."""

    name: str
    regex: str


@dataclass(frozen=True)
class SpotConfig:
    """steps.training.spot: managed spot training (spot.py)."""

    max_wait_minutes: int


@dataclass(frozen=True)
class StepConfig:
    role: str  # preprocessing | training | evaluation
    script: str
    framework: str
    framework_version: Optional[str]
    image_uri: Optional[str]
    instance_type: str
    instance_count: int
    volume_size_gb: int
    max_runtime_minutes: int
    environment: Dict[str, str] = field(default_factory=dict)
    inputs: Tuple[InputConfig, ...] = ()
    arguments: Tuple[str, ...] = ()
    hyperparameters: Dict[str, Scalar] = field(default_factory=dict)
    # Container paths (processing steps; docs/contract.md, 2.3): preprocessing's
    # split folders, evaluation's model, test data and output folders.
    outputs: Dict[str, str] = field(default_factory=dict)
    model_destination: Optional[str] = None
    test_destination: Optional[str] = None
    output: Optional[str] = None
    # Training: its input channels (docs/contract.md, 3.3); evaluation: the
    # preprocessing output put at test_destination (None: no test data).
    channels: Tuple[ChannelConfig, ...] = ()
    test_from: Optional[str] = None
    # A SageMaker built-in algorithm (training only; mltp/algorithms): no script
    # (`script` is ""), `framework` is the algorithm's framework, whose
    # framework_version picks the image.
    algorithm: Optional[str] = None
    # Training only: metrics read from the job's log (AlgorithmSpecification.MetricDefinitions).
    metric_definitions: Tuple[MetricDefinition, ...] = ()
    # The step cache (step_cache.py): reuse the outputs of the newest successful
    # run with the same key, for at most cache_expire_days.
    cache: bool = False
    cache_expire_days: int = 30
    spot: Optional[SpotConfig] = None  # training only: steps.training.spot


@dataclass(frozen=True)
class Steps:
    preprocessing: StepConfig
    training: StepConfig
    evaluation: StepConfig

    def all(self) -> Tuple[StepConfig, StepConfig, StepConfig]:
        return (self.preprocessing, self.training, self.evaluation)


@dataclass(frozen=True)
class GateRule:
    """A threshold rule (min and/or max) or a champion rule (beat_champion):
    the challenger must be at least `by` better than the newest Approved
    version of the group, in the direction `better` ('higher' or 'lower')."""

    metric: str
    min: Optional[float] = None
    max: Optional[float] = None
    beat_champion: bool = False
    by: float = 0.0
    better: str = "higher"
    # Where in evaluation.json the value is, dotted like JsonGet ('regression_metrics.mse.value');
    # None: metrics.<metric>.value, else SageMaker's model-quality sections (gate.SECTIONS).
    path: Optional[str] = None
    # Where the value comes from: 'evaluation' (evaluation.json) or 'training' (the
    # training job's metrics, steps.training.metric_definitions; gate.TRAINING).
    source: str = "evaluation"

    def describe(self) -> str:
        if self.beat_champion:
            sign = "+" if self.better == "higher" else "-"
            margin = f" {sign} {self.by:g}" if self.by else ""
            op = ">=" if self.better == "higher" else "<="
            return f"{op} champion{margin}"
        parts = []
        if self.min is not None:
            parts.append(f">= {self.min:g}")
        if self.max is not None:
            parts.append(f"<= {self.max:g}")
        return " and ".join(parts)


@dataclass(frozen=True)
class AwsConfig:
    region: str
    bucket: str
    prefix: str
    sagemaker_role_arn: str
    states_role_arn: str
    kms_key_id: Optional[str]
    tags: Dict[str, str]
    # The jobs' role for branch and pull request builds (docs/trust.md); None: sagemaker_role_arn.
    branch_sagemaker_role_arn: Optional[str] = None

    @property
    def account_id(self) -> str:
        """The account that owns the roles: the one the bucket is expected in."""
        return self.sagemaker_role_arn.split(":")[4]


@dataclass(frozen=True)
class InferenceConfig:
    instance_types: Tuple[str, ...]
    content_types: Tuple[str, ...]
    response_types: Tuple[str, ...]


@dataclass(frozen=True)
class RegistryConfig:
    model_package_group: str
    approval_status: str
    inference: InferenceConfig


@dataclass(frozen=True)
class RetrainConfig:
    """Retraining when new data lands: which preprocessing inputs to watch, and
    when a burst of objects is complete (a quiet period, or a marker object)."""

    on_inputs: Tuple[InputConfig, ...]
    quiet_minutes: Optional[int]  # None when `marker` is set
    marker: Optional[str]


DEFAULT_QUIET_MINUTES = 10


@dataclass(frozen=True)
class LogsConfig:
    retention_days: int = 30


@dataclass(frozen=True)
class NotifyConfig:
    """Where the model's runs nobody watches are told about (notifications.py)."""

    topic_arn: str
    events: Tuple[str, ...]  # failed | registered | approved | rejected


@dataclass(frozen=True)
class Config:
    path: Path  # the config file
    repo: Path  # the model repo it describes
    version: int
    name: str
    description: Optional[str]
    aws: AwsConfig
    steps: Steps
    gate: Tuple[GateRule, ...]
    registry: RegistryConfig
    schedule: Optional[str]
    retrain: Optional[RetrainConfig] = None
    logs: LogsConfig = LogsConfig()
    notify: Optional[NotifyConfig] = None
    lines: Dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def line_of(self, key: str) -> Optional[int]:
        """Line of a key path (e.g. 'steps.training.script') if the file sets it."""
        return self.lines.get(key)

    def where(self, key: str) -> str:
        """'config.yaml:12' for a key set in the file, 'config.yaml' otherwise."""
        line = self.line_of(key)
        return f"{display(self.path)}:{line}" if line else display(self.path)
