"""The state machine definition (docs/contract.md, section 10), built from a config.

Preprocessing -> Training -> Evaluation -> ReadEvaluation -> MetricSections ->
GateMetrics -> Gate -> ShouldRegister -> CopyModel -> CopyEvaluation -> Register ->
Registered, with MetricGateFailed (Fail) when the gate is missed and NotRegistered
(Succeed) when the run does not register (branches, pull requests). The two Copy
states put the run's model.tar.gz and evaluation.json under `registry/<run>/`,
which only the states role may write, and Register names those copies: a job
(of any branch) can rewrite its run's folder, never a registered version.

The states are built with the AWS Step Functions Data Science SDK (`stepfunctions`)
and the job configurations with the SageMaker Python SDK v2 (image URIs, framework
estimators, processors), offline: no network, no credentials (see `_offline_session`).

Everything that differs between runs is read from the execution input
(`$$.Execution.Input.<Key>`, the keys of `naming.ExecutionInput`), so the same
config always renders the same bytes and `deploy` can say "unchanged".

The SDKs build the states; where they fall short, this module says so where it
fills in:

- script-mode hyperparameters: the SDK's hold the code location given at build
  time and a timestamped job name; TrainingStep's `hyperparameters` replace them
  with execution input values (JSON-encoded with States.Format, as the SDK encodes
  them), and keep the script's path inside the repo as sagemaker_program;
- the training Environment, which the SDK's exporter drops: TrainingStep `parameters`;
- intrinsic functions as Parameters values: a Placeholder whose path is the expression;
- `_add_result_selectors` (post-processing): stepfunctions 2.3 has no ResultSelector;
- `_drop_nulls` (post-processing, a safety net): the SDK renders unset optional
  fields as null (e.g. "InputName": null for an unnamed processing input), which the
  APIs reject; every input here is named and the tests check that the SDK's own
  output has no null, so this removes nothing today;
- `_offline_session`, `_hermetic_aws_environment`, the partition lookup: the SDKs
  otherwise read the machine's AWS settings (region, profile, SDK defaults files).

Heavy imports (sagemaker, stepfunctions: about 3 s) happen inside functions only,
so `mltp --help` and `mltp validate` stay fast.
"""

import json
import logging
import os
import warnings
from contextlib import contextmanager
from dataclasses import fields
from functools import lru_cache
from typing import Any, Dict, Iterator, List, Optional

from . import gate, training_metrics
from .config import Config, StepConfig
from .naming import ExecutionInput

# --------------------------------------------------------------------------- names the CLI relies on

PREPROCESSING = "Preprocessing"
TRAINING = "Training"
EVALUATION = "Evaluation"
READ_EVALUATION = "ReadEvaluation"
METRIC_SECTIONS = "MetricSections"
GATE_METRICS = "GateMetrics"
GATE = "Gate"
GATE_FAILED = "MetricGateFailed"
SHOULD_REGISTER = "ShouldRegister"
NOT_REGISTERED = "NotRegistered"
COPY_MODEL = "CopyModel"
COPY_EVALUATION = "CopyEvaluation"
REGISTER = "Register"
REGISTERED = "Registered"
# The step cache (plan.py): a Choice before each job skips it when the execution
# input's Cache.reuse names it (its outputs are an earlier run's).
REUSE_PREPROCESSING = "ReusePreprocessing"
REUSE_TRAINING = "ReuseTraining"
REUSE_EVALUATION = "ReuseEvaluation"
REUSE_STATES = {PREPROCESSING: REUSE_PREPROCESSING, TRAINING: REUSE_TRAINING, EVALUATION: REUSE_EVALUATION}
REUSE_PATH = "$.Cache.reuse"
STATES = (REUSE_PREPROCESSING, REUSE_TRAINING, REUSE_EVALUATION, PREPROCESSING, TRAINING, EVALUATION, READ_EVALUATION, METRIC_SECTIONS, GATE_METRICS, GATE, GATE_FAILED,
          SHOULD_REGISTER, NOT_REGISTERED, COPY_MODEL, COPY_EVALUATION, REGISTER, REGISTERED)

GATE_ERROR = "MetricGateFailed"  # the Fail state's Error (docs/contract.md, 10.1)

# Where results land in the state data (and so in the execution output).
JOBS_PATH = "$.jobs"  # $.jobs.preprocessing.ProcessingJobArn, $.jobs.training.TrainingJobArn, ...
EVALUATION_PATH = "$.evaluation"  # $.evaluation.report = evaluation.json, parsed
METRICS_PATH = gate.VALUES_PATH  # each metric's entry, the sections merged (gate.merge_states)
REGISTRY_PATH = "$.registry"  # $.registry.model.ETag, $.registry.evaluation.ETag: the copies (CopyObject)
REGISTER_PATH = "$.register"  # the CreateModelPackage response
MODEL_PACKAGE_ARN_PATH = "$.register.ModelPackageArn"

# Paths inside the processing containers (docs/contract.md, 3.1).
PROCESSING_ROOT = "/opt/ml/processing"
INPUT_DIR = f"{PROCESSING_ROOT}/input"
OUTPUT_DIR = f"{PROCESSING_ROOT}/output"
MODEL_DIR = f"{PROCESSING_ROOT}/model"
CODE_DIR = f"{INPUT_DIR}/code"
SPLITS = ("train", "validation", "test")

# Retry policies. Step Functions names errors of its optimized SageMaker integration
# after the SageMaker Java SDK v1 exceptions: throttling and internal errors arrive as
# SageMaker.AmazonSageMakerException (its catch-all; so do validation errors, which a
# few retries only delay), a full instance quota as SageMaker.ResourceLimitExceededException
# (AWS's own example retries both). A job that ran and failed is States.TaskFailed and
# is NOT retried: that would rerun the script, and reuse the job name. AWS SDK
# integrations (ReadEvaluation, Register) use Java SDK v2 names: <Service>.<Service>Exception
# is the catch-all for service errors (throttling, 5xx), <Service>.SdkClientException
# the client-side ones (connection resets); S3.NoSuchKeyException is not retried.
SAGEMAKER_JOB_RETRIES = (
    (("SageMaker.AmazonSageMakerException",), 10, 4, 2.0),
    (("SageMaker.ResourceLimitExceededException",), 60, 3, 2.0),
)
S3_RETRIES = ((("S3.S3Exception", "S3.SdkClientException"), 2, 4, 2.0),)
REGISTER_RETRIES = ((("SageMaker.SageMakerException", "SageMaker.SdkClientException"), 5, 4, 2.0),)

_PLACEHOLDER = "s3://mltp-build-placeholder/"  # SDK arguments that the execution input replaces
_INPUT_KEYS = tuple(f.name for f in fields(ExecutionInput))


def execution_input_path(key: str) -> str:
    if key not in _INPUT_KEYS:
        raise KeyError(f"{key} is not an execution input key ({', '.join(_INPUT_KEYS)})")
    return f"$$.Execution.Input.{key}"


# --------------------------------------------------------------------------- entry points


def render(config: Config) -> str:
    """The definition as deterministic JSON: same config, same bytes. Served from
    definition_cache when these exact inputs were rendered before (no SDK import)."""
    from . import definition_cache

    return definition_cache.cached(config, lambda: render_fresh(config))


def render_fresh(config: Config) -> str:
    """Rendered now, through the SDKs."""
    return json.dumps(build_definition(config), indent=2, sort_keys=True) + "\n"


def build_definition(config: Config) -> Dict[str, Any]:
    """The Amazon States Language definition of the model's state machine."""
    with _hermetic_aws_environment(config.aws.region):
        return _build(config)


def _build(config: Config) -> Dict[str, Any]:
    sdk = _import_sdks()
    from stepfunctions.steps import integration_resources

    # The SDK looks the partition up for every Task (about 0.4 s each, reading
    # botocore's endpoint tables); the answer depends on the region only.
    partition = _partition(config.aws.region)
    lookup = integration_resources.get_aws_partition
    integration_resources.get_aws_partition = lambda: partition
    try:
        return _build_states(config, sdk, partition)
    finally:
        integration_resources.get_aws_partition = lookup


@lru_cache(maxsize=None)
def _partition(region: str) -> str:
    """The ARN partition of a region (aws, aws-cn, aws-us-gov, ...), as the
    stepfunctions SDK determines it; the environment is pinned to `region` here."""
    from stepfunctions.steps.utils import get_aws_partition

    return get_aws_partition()


def _build_states(config: Config, sdk: "_Sdk", partition: str) -> Dict[str, Any]:
    session = _offline_session(config.aws.region)
    from stepfunctions.inputs import ExecutionInput as Placeholders
    from stepfunctions.steps import Choice, ChoiceRule, Fail, Graph, Pass, Retry, Succeed, Task

    # Champion is read as state data ($.Champion.Bars, gate.choice_rule), not as a placeholder.
    inputs = Placeholders(schema={key: (bool if key == "Register" else str) for key in _INPUT_KEYS
                                  if key not in ("Champion", "Cache")})

    preprocessing = _processing_step(PREPROCESSING, config, config.steps.preprocessing, inputs, session, sdk)
    training = _training_step(config, inputs, session, sdk)
    evaluation = _processing_step(EVALUATION, config, config.steps.evaluation, inputs, session, sdk)

    read_evaluation = Task(
        READ_EVALUATION,
        comment="Reads evaluation.json (written by the evaluation step) into the state data",
        resource=f"arn:{partition}:states:::aws-sdk:s3:getObject",
        parameters={"Bucket": inputs["EvaluationBucket"], "Key": inputs["EvaluationKey"]},
        result_path=EVALUATION_PATH,
    )

    # evaluation.json's metric sections merged into one entry per metric, as gate.merged_entries does.
    merge = gate.merge_states()
    metric_sections, gate_metrics_state = (
        Pass(name, comment=merge[name]["Comment"], parameters=merge[name]["Parameters"],
             result_path=merge[name]["ResultPath"])
        for name in (METRIC_SECTIONS, GATE_METRICS))

    rules = config.gate
    gate_state = Choice(GATE, comment=f"Every rule must hold; a missing metric fails: {gate.describe_rules(rules)}")
    gate_failed = Fail(
        GATE_FAILED,
        comment="The model missed its metric gate: nothing is registered",
        error=GATE_ERROR,
        cause=f"evaluation.json missed the metric gate ({gate.describe_rules(rules)})",
    )
    should_register = Choice(SHOULD_REGISTER, comment="Only runs of the default branch register (execution input Register)")
    not_registered = Succeed(NOT_REGISTERED, comment="Passed the gate; this run does not register")
    register = Task(
        REGISTER,
        comment="Registers the model as a new version in the model package group",
        resource=f"arn:{partition}:states:::aws-sdk:sagemaker:createModelPackage",
        parameters=_register_parameters(config, inputs, sdk),
        result_path=REGISTER_PATH,
    )
    registered = Succeed(REGISTERED, comment="Passed the gate and registered")
    copy_model, copy_evaluation = (
        Task(
            name,
            comment=comment,
            resource=f"arn:{partition}:states:::aws-sdk:s3:copyObject",
            parameters=_copy_parameters(config, inputs, source, key, condition),
            result_path=f"{REGISTRY_PATH}.{part}",
        )
        for name, part, source, key, condition, comment in (
            (COPY_MODEL, "model", "ModelArtifactCopySource", "RegistryModelKey", None,
             "Copies model.tar.gz to registry/<run>/, where no job role can write, for Register to name"),
            (COPY_EVALUATION, "evaluation", "EvaluationCopySource", "RegistryEvaluationKey", f"{EVALUATION_PATH}.ETag",
             "Copies evaluation.json to registry/<run>/: the very bytes the Gate read (CopySourceIfMatch)"),
        ))

    for step in (preprocessing, training, evaluation):
        for errors, interval, attempts, backoff in SAGEMAKER_JOB_RETRIES:
            step.add_retry(Retry(error_equals=list(errors), interval_seconds=interval, max_attempts=attempts, backoff_rate=backoff))
    for step, policy in ((read_evaluation, S3_RETRIES), (copy_model, S3_RETRIES), (copy_evaluation, S3_RETRIES),
                         (register, REGISTER_RETRIES)):
        for errors, interval, attempts, backoff in policy:
            step.add_retry(Retry(error_equals=list(errors), interval_seconds=interval, max_attempts=attempts, backoff_rate=backoff))

    reuse = {
        state.state_id: Choice(REUSE_STATES[state.state_id],
                               comment=f"The step cache: skip {state.state_id} when its outputs are an earlier run's "
                                       f"({REUSE_PATH}.{state.state_id} names that run)")
        for state in (preprocessing, training, evaluation)}
    for state, following in ((preprocessing, reuse[TRAINING]), (training, reuse[EVALUATION]),
                             (evaluation, read_evaluation)):
        rule = {"Variable": f"{REUSE_PATH}.{state.state_id}", "IsPresent": True}
        reuse[state.state_id].add_choice(_AslRule.of(rule, sdk), following)
        reuse[state.state_id].default_choice(state)
        state.next(following)
    read_evaluation.next(metric_sections)
    metric_sections.next(gate_metrics_state)
    gate_metrics_state.next(gate_state)
    gate_state.add_choice(_AslRule.of(gate.choice_rule(rules, METRICS_PATH, gate.REPORT_PATH), sdk), should_register)
    gate_state.default_choice(gate_failed)
    should_register.add_choice(ChoiceRule.BooleanEquals(variable=inputs["Register"].to_jsonpath(), value=True), copy_model)
    should_register.default_choice(not_registered)
    copy_model.next(copy_evaluation)
    copy_evaluation.next(register)
    register.next(registered)

    graph = Graph(
        reuse[PREPROCESSING],
        comment=f"mltp: {config.name}: preprocessing, training, evaluation, metric gate, registration",
    )
    definition = graph.to_dict()
    _add_result_selectors(definition["States"], config.gate)
    return _drop_nulls(definition)


# --------------------------------------------------------------------------- SDK access


class _Sdk:
    """The SDK modules, imported on first use."""

    def __init__(self) -> None:
        import sagemaker
        from sagemaker import image_uris
        from sagemaker.estimator import Framework
        from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
        from sagemaker.pytorch import PyTorch
        from sagemaker.sklearn import SKLearn
        from sagemaker.xgboost import XGBoost
        from sagemaker.utils import instance_supports_kms
        from stepfunctions.steps.choice_rule import BaseRule

        self.sagemaker = sagemaker
        self.image_uris = image_uris
        self.Framework = Framework
        self.Processor = Processor
        self.ProcessingInput = ProcessingInput
        self.ProcessingOutput = ProcessingOutput
        self.estimators = {"sklearn": SKLearn, "xgboost": XGBoost, "pytorch": PyTorch}
        self.BaseRule = BaseRule
        self.instance_supports_kms = instance_supports_kms


_SDK: Optional[_Sdk] = None


def _import_sdks() -> _Sdk:
    global _SDK
    if _SDK is None:
        os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        # "sagemaker.config INFO - Not applying SDK defaults from location ..." and friends.
        for name in ("sagemaker", "sagemaker.config"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # "IPython failed to import. Visualization features will be impaired": a notebook
        # concern, logged as a warning on import.
        logging.getLogger("stepfunctions").setLevel(logging.ERROR)
        # stepfunctions reads its own version through pkg_resources, which warns
        # that it is deprecated: a packaging matter of the SDK, not the user's.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        _SDK = _Sdk()
    return _SDK


@contextmanager
def _hermetic_aws_environment(region: str) -> Iterator[None]:
    """The machine's AWS settings, hidden while the SDKs run.

    Both SDKs create default boto3 sessions: the SageMaker SDK on import (JumpStart
    region defaults), stepfunctions for every Task's Resource ARN, whose partition
    (arn:aws, arn:aws-cn, ...) it derives from the *machine's* region. So during a
    build the region is the config's, and no profile or ~/.aws file is read: the
    same config renders the same bytes on every machine, and a missing profile or
    broken ~/.aws/config cannot break a render (nothing here talks to AWS).
    """
    pinned = {
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    hidden = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE")
    saved = {k: os.environ.get(k) for k in (*pinned, *hidden)}
    try:
        for k in hidden:
            os.environ.pop(k, None)
        os.environ.update(pinned)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _offline_session(region: str):
    """A SageMaker session that cannot reach AWS and ignores the machine's settings.

    It has no boto session and no clients, so an SDK code path that would call AWS
    fails while building (AttributeError on None) instead of making a request; no
    credentials, profile or ~/.aws file is read. Its SDK defaults config is empty, so
    the SageMaker SDK's "intelligent defaults" files (/etc/xdg/sagemaker/config.yaml,
    ~/.config/sagemaker/config.yaml) cannot add tags, KMS keys or networking: the
    definition comes from config.yaml only. (A regular Session also costs about 3 s:
    it loads five service models and validates its config against a JSON schema.)
    """
    from sagemaker.session import Session

    class OfflineSession(Session):
        def _initialize(self, *args, **kwargs):  # replaces client creation and config loading
            self.boto_session = None
            self._region_name = region
            self.sagemaker_client = None
            self.sagemaker_runtime_client = None
            self.sagemaker_featurestore_runtime_client = None
            self.sagemaker_metrics_client = None
            self.local_mode = False
            self.sagemaker_config = {}

    return OfflineSession(default_bucket="mltp-offline-render")


def _py_version(framework: str, version: str, scope: str) -> Optional[str]:
    """The newest Python the SageMaker image table lists for a framework version."""
    sdk = _import_sdks()
    table = sdk.image_uris.config_for_framework(framework)
    table = table.get(scope, table)
    resolved = table.get("version_aliases", {}).get(version, version)
    entry = table.get("versions", {}).get(resolved, {})
    versions = entry.get("py_versions") or []
    return versions[-1] if versions else None


def image_uri(step: StepConfig, region: str, scope: str = "training", instance_type: Optional[str] = None) -> str:
    """The container image of a step: the SageMaker framework image (offline lookup
    in the SDK's table), or the step's own image for framework 'image'.
    Processing jobs run the framework's training image (as the SDK's FrameworkProcessor does)."""
    if step.framework == "image":
        assert step.image_uri, "framework 'image' needs image_uri (config validation ensures it)"
        return step.image_uri
    if step.algorithm:  # a built-in algorithm's image trains and serves (mltp/algorithms)
        from . import algorithms

        return algorithms.image_uri(step.algorithm, step.framework_version, region)
    return _framework_image(step.framework, step.framework_version, region, scope, instance_type or step.instance_type)


@lru_cache(maxsize=None)
def _framework_image(framework: str, version: str, region: str, scope: str, instance_type: str) -> str:
    """sagemaker.image_uris.retrieve: a lookup in the SDK's bundled tables, no network."""
    sdk = _import_sdks()
    return sdk.image_uris.retrieve(
        framework,
        region,
        version=version,
        py_version=_py_version(framework, version, scope),
        instance_type=instance_type,
        image_scope=scope,
    )


# --------------------------------------------------------------------------- the states


def _tags(config: Config) -> Dict[str, str]:
    return {key: config.aws.tags[key] for key in sorted(config.aws.tags)}


def _entrypoint(step: StepConfig) -> List[str]:
    """Processing scripts start through mltp's entry point (shipped in the code
    bundle), which installs requirements.txt first, as SageMaker's
    FrameworkProcessor does (see processing_entry). The evaluation script also
    runs under mltp's guard: an empty model or an oversized evaluation.json then
    fails the job with a reason, the same way on AWS and locally (see evaluation_guard)."""
    from .evaluation_guard import SHIPPED_AS as GUARD
    from .processing_entry import SHIPPED_AS as ENTRY

    entry = ["python3", f"{CODE_DIR}/{ENTRY}"]
    if step.role == "evaluation":
        return entry + [f"{CODE_DIR}/{GUARD}", f"{CODE_DIR}/{step.script}"]
    return entry + [f"{CODE_DIR}/{step.script}"]


def container_paths(step: StepConfig) -> Dict[str, str]:
    """The folders of a processing step inside its container: config.yaml's
    (docs/contract.md, 2.3) or the defaults. Preprocessing: one per output
    (train, validation, test by default); evaluation: model, test, output."""
    if step.role == "evaluation":
        return {
            "model": step.model_destination or MODEL_DIR,
            "test": step.test_destination or f"{INPUT_DIR}/test",
            "output": step.output or OUTPUT_DIR,
        }
    return dict(step.outputs) or {split: f"{OUTPUT_DIR}/{split}" for split in SPLITS}


# The execution input keys of the default outputs (kept as they were); any other
# output's folder is <PreprocessingS3Uri><name>/.
_OUTPUT_KEYS = {"train": "TrainDataS3Uri", "validation": "ValidationDataS3Uri", "test": "TestDataS3Uri"}


def output_s3_uri(name: str, inputs):
    """Where preprocessing's output `name` is uploaded, as the run's execution input gives it."""
    if name in _OUTPUT_KEYS:
        return inputs[_OUTPUT_KEYS[name]]
    return _intrinsic(f"States.Format('{{}}{name}/', {execution_input_path('PreprocessingS3Uri')})")


def _volume_kms_key(config: Config, step: StepConfig, sdk: _Sdk) -> Optional[str]:
    """aws.kms_key_id for the step's storage volume, except on instance types with
    local (NVMe) storage: CreateProcessingJob and CreateTrainingJob document that
    you can't request a VolumeKmsKeyId with those (a hardware module encrypts
    their storage). The SDK's own table of such types decides."""
    if config.aws.kms_key_id and sdk.instance_supports_kms(step.instance_type):
        return config.aws.kms_key_id
    return None


def _processing_step(state_id: str, config: Config, step: StepConfig, inputs, session, sdk: _Sdk):
    from stepfunctions.steps import ProcessingStep

    is_evaluation = step.role == "evaluation"
    paths = container_paths(step)
    # The variables name the step's folders (docs/contract.md, 3.1): evaluation's
    # output folder is where the guard looks for evaluation.json.
    environment = {"MLTP_INPUT_DIR": INPUT_DIR, "MLTP_OUTPUT_DIR": paths["output"] if is_evaluation else OUTPUT_DIR}
    if is_evaluation:
        environment["MLTP_MODEL_DIR"] = paths["model"]
    environment.update(step.environment)

    processor = sdk.Processor(
        role=config.aws.sagemaker_role_arn,
        image_uri=image_uri(step, config.aws.region),
        instance_count=step.instance_count,
        instance_type=step.instance_type,
        volume_size_in_gb=step.volume_size_gb,
        volume_kms_key=_volume_kms_key(config, step, sdk),
        output_kms_key=config.aws.kms_key_id,
        max_runtime_in_seconds=step.max_runtime_minutes * 60,
        env=environment,
        sagemaker_session=session,
    )
    s3_prefix = dict(s3_data_type="S3Prefix", s3_input_mode="File", s3_data_distribution_type="FullyReplicated")
    # The whole code bundle, so scripts can import the repo's own modules.
    job_inputs = [sdk.ProcessingInput(source=inputs["CodeS3Uri"], destination=CODE_DIR, input_name="code", **s3_prefix)]
    if is_evaluation:
        # S3Prefix on the object's key is how SageMaker downloads a single file.
        job_inputs.append(sdk.ProcessingInput(source=inputs["ModelArtifactS3Uri"], destination=paths["model"], input_name="model", **s3_prefix))
        if config.steps.evaluation.test_from:  # validation refuses a config without one
            job_inputs.append(sdk.ProcessingInput(source=output_s3_uri(config.steps.evaluation.test_from, inputs),
                                                  destination=paths["test"], input_name="test", **s3_prefix))
        outputs = [sdk.ProcessingOutput(source=paths["output"], destination=inputs["EvaluationOutputS3Uri"], output_name="evaluation", s3_upload_mode="EndOfJob")]
    else:
        for item in step.inputs:
            job_inputs.append(sdk.ProcessingInput(source=item.source, destination=item.path, input_name=item.name, **s3_prefix))
        outputs = [
            sdk.ProcessingOutput(source=path, destination=output_s3_uri(name, inputs), output_name=name, s3_upload_mode="EndOfJob")
            for name, path in paths.items()
        ]

    job = "PreprocessingJobName" if state_id == PREPROCESSING else "EvaluationJobName"
    return ProcessingStep(
        state_id,
        processor=processor,
        job_name=inputs[job],
        inputs=job_inputs,
        outputs=outputs,
        container_entrypoint=_entrypoint(step),
        container_arguments=list(step.arguments) or None,
        kms_key_id=config.aws.kms_key_id,
        tags=_tags(config) or None,
        result_path=f"{JOBS_PATH}.{step.role}",
        comment=f"SageMaker processing job running {step.script}",
    )


def _estimator(config: Config, step: StepConfig, session, sdk: _Sdk):
    common = dict(
        entry_point=step.script,
        source_dir=_PLACEHOLDER + "sourcedir.tar.gz",  # replaced by SourceDirS3Uri (_training_step)
        output_path=_PLACEHOLDER,  # replaced by ModelOutputS3Uri (output_data_config_path)
        role=config.aws.sagemaker_role_arn,
        instance_count=step.instance_count,
        instance_type=step.instance_type,
        volume_size=step.volume_size_gb,
        max_run=step.max_runtime_minutes * 60,
        hyperparameters=dict(step.hyperparameters),
        volume_kms_key=_volume_kms_key(config, step, sdk),
        output_kms_key=config.aws.kms_key_id,
        sagemaker_session=session,
        # Debugger and profiler rules would add S3 paths outside the run's layout.
        debugger_hook_config=False,
        disable_profiler=True,
    )
    if step.metric_definitions:  # AlgorithmSpecification.MetricDefinitions, as config.yaml gives them
        common["metric_definitions"] = metric_definitions(step)
    common.update(_spot_arguments(step))
    if step.framework == "image":
        return _image_framework(sdk)(image_uri=step.image_uri, **common)
    estimator = sdk.estimators[step.framework]
    py_version = _py_version(step.framework, step.framework_version, "training") or "py3"
    return estimator(framework_version=step.framework_version, py_version=py_version, **common)


def metric_definitions(step: StepConfig) -> List[Dict[str, str]]:
    """steps.training.metric_definitions as CreateTrainingJob takes them."""
    return [{"Name": m.name, "Regex": m.regex} for m in step.metric_definitions]


def _image_framework(sdk: _Sdk):
    """Script mode on the user's own image (framework: image): the SDK's Framework base
    with an explicit image; it carries the same sagemaker_* hyperparameters."""

    class ImageFramework(sdk.Framework):
        _framework_name = "image"
        framework_version = None  # the image is given: no version or Python to look up
        py_version = None

        def create_model(self, **kwargs):  # pragma: no cover - mltp registers through the state machine
            raise NotImplementedError

    return ImageFramework


def _training_step(config: Config, inputs, session, sdk: _Sdk):
    from stepfunctions.steps import TrainingStep

    step = config.steps.training
    if step.algorithm:
        return _algorithm_training_step(config, inputs, session, sdk)
    estimator = _estimator(config, step, session, sdk)
    model = sdk.sagemaker.model
    return TrainingStep(
        TRAINING,
        estimator=estimator,
        job_name=inputs["TrainingJobName"],
        data=_training_channels(step, inputs, sdk),
        # Merged over the estimator's script-mode hyperparameters, which hold the
        # build-time placeholder code location and a timestamped job name: both come
        # from the execution input instead. sagemaker_program keeps the script's path
        # inside the repo (the SDK keeps only the file name).
        hyperparameters={
            model.DIR_PARAM_NAME: _json_encoded("SourceDirS3Uri"),
            model.JOB_NAME_PARAM_NAME: _json_encoded("TrainingJobName"),
            model.SCRIPT_PARAM_NAME: json.dumps(step.script),
        },
        output_data_config_path=inputs["ModelOutputS3Uri"],
        tags=_tags(config) or None,
        # The SDK's exporter (sagemaker.workflow.airflow.training_config) drops the
        # estimator's environment; the step's parameters carry it.
        parameters=_training_parameters(step, inputs),
        result_path=f"{JOBS_PATH}.training",
        comment=f"SageMaker training job running {step.script} (script mode, {step.framework})",
    )


def _training_channels(step: StepConfig, inputs, sdk: _Sdk) -> Dict[str, Any]:
    """One Channel per configured channel (steps.training.channels), as
    estimator.fit({name: TrainingInput(...)}) gives it, for script mode and
    built-in algorithms alike."""
    channels = {}
    for item in step.channels:
        channel = sdk.sagemaker.inputs.TrainingInput(item.s3_uri or _PLACEHOLDER + item.name, s3_data_type="S3Prefix",
                                                     distribution="FullyReplicated", content_type=item.content_type)
        if item.output:
            channel.config["DataSource"]["S3DataSource"]["S3Uri"] = output_s3_uri(item.output, inputs)  # S3Uri.$
        channels[item.name] = channel
    return channels


def _algorithm_training_step(config: Config, inputs, session, sdk: _Sdk):
    """A built-in algorithm (steps.training.algorithm): the SDK's generic
    Estimator on the algorithm's image, as a notebook trains one. No script-mode
    hyperparameters (no code bundle, no sagemaker_program): the algorithm's own,
    each as text, as the SDK hands a generic estimator's values to SageMaker."""
    from stepfunctions.steps import TrainingStep

    step = config.steps.training
    image = image_uri(step, config.aws.region)
    estimator = sdk.sagemaker.estimator.Estimator(
        image_uri=image,
        output_path=_PLACEHOLDER,  # replaced by ModelOutputS3Uri (output_data_config_path)
        role=config.aws.sagemaker_role_arn,
        instance_count=step.instance_count,
        instance_type=step.instance_type,
        volume_size=step.volume_size_gb,
        max_run=step.max_runtime_minutes * 60,
        input_mode="File",
        hyperparameters={name: algorithm_text(value) for name, value in step.hyperparameters.items()},
        volume_kms_key=_volume_kms_key(config, step, sdk),
        output_kms_key=config.aws.kms_key_id,
        sagemaker_session=session,
        debugger_hook_config=False,
        disable_profiler=True,
        **_spot_arguments(step),
    )
    return TrainingStep(
        TRAINING,
        estimator=estimator,
        job_name=inputs["TrainingJobName"],
        data=_training_channels(step, inputs, sdk),
        output_data_config_path=inputs["ModelOutputS3Uri"],
        tags=_tags(config) or None,
        parameters=_training_parameters(step, inputs),
        result_path=f"{JOBS_PATH}.training",
        comment=f"SageMaker training job of the built-in algorithm {step.algorithm} {step.framework_version}",
    )


def algorithm_text(value: Any) -> str:
    """A built-in algorithm's hyperparameter as SageMaker gets it: text, booleans
    as the algorithms spell them (true, false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
def _spot_arguments(step: StepConfig) -> Dict[str, Any]:
    """Managed spot training (spot.py): the estimator's spot settings; the
    checkpoint URI is a placeholder that _training_parameters replaces."""
    if step.spot is None:
        return {}
    from . import spot

    return dict(use_spot_instances=True, max_wait=step.spot.max_wait_minutes * 60,
                checkpoint_s3_uri=_PLACEHOLDER + spot.CHECKPOINT_FOLDER,
                checkpoint_local_path=spot.CHECKPOINT_LOCAL_PATH)


def _training_parameters(step: StepConfig, inputs) -> Optional[Dict[str, Any]]:
    """Merged over the SDK's CreateTrainingJob request: the Environment, and the
    spot checkpoints' S3 URI from the execution input (under the run)."""
    parameters: Dict[str, Any] = {}
    if step.environment:
        parameters["Environment"] = dict(step.environment)
    if step.spot is not None:
        parameters["CheckpointConfig"] = {"S3Uri": inputs["CheckpointS3Uri"]}
    return parameters or None


def _register_parameters(config: Config, inputs, sdk: _Sdk) -> Dict[str, Any]:
    training = config.steps.training
    inference = config.registry.inference
    sagemaker_model = sdk.sagemaker.model
    container = {
        "Image": image_uri(training, config.aws.region, scope="inference", instance_type=inference.instance_types[0]),
        "ModelDataUrl": inputs["RegistryModelS3Uri"],  # the copy (CopyModel), not the run's object
        # What the SDK's framework models set (Model.prepare_container_def): the serving
        # container loads model_fn & co. from the training script in the code bundle.
        "Environment": {
            sagemaker_model.SCRIPT_PARAM_NAME.upper(): training.script,
            sagemaker_model.DIR_PARAM_NAME.upper(): inputs["SourceDirS3Uri"],
            sagemaker_model.CONTAINER_LOG_LEVEL_PARAM_NAME.upper(): str(logging.INFO),
            sagemaker_model.SAGEMAKER_REGION_PARAM_NAME.upper(): config.aws.region,
        },
    }
    if training.algorithm:  # the algorithm's image serves its own model: no script to name
        del container["Environment"]
    description = " ".join((config.description or f"{config.name}, trained and gated by mltp").split())[:1024]
    parameters: Dict[str, Any] = {
        "ModelPackageGroupName": config.registry.model_package_group,
        "ModelPackageDescription": description,
        "ModelApprovalStatus": config.registry.approval_status,
        "InferenceSpecification": {
            "Containers": [container],
            "SupportedContentTypes": list(inference.content_types),
            "SupportedResponseMIMETypes": list(inference.response_types),
            "SupportedRealtimeInferenceInstanceTypes": list(inference.instance_types),
        },
        "ModelMetrics": {
            "ModelQuality": {
                "Statistics": {"ContentType": "application/json", "S3Uri": inputs["RegistryEvaluationS3Uri"]},
            },
        },
        "CustomerMetadataProperties": {
            "RunName": inputs["RunName"],
            "GitCommit": inputs["GitCommit"],
            "BuildUrl": inputs["BuildUrl"],
            # The gate's values, so `mltp models` and the next run's champion read
            # them from the registry. Register runs only after the Gate passed, so
            # each is present and a number.
            **{metric_property(m): _intrinsic(f"States.Format('{{}}', {gate.value_path(m, config.gate)})")
               for m in gate_metrics(config)},
        },
        # SageMaker's own lineage fields; they take any text.
        "MetadataProperties": {"CommitId": inputs["GitCommit"], "GeneratedBy": inputs["BuildUrl"]},
        # Idempotency: a retry after a lost response must not register a second version.
        # One token per execution (MD5 hex: 32 characters, within the API's 36).
        "ClientToken": _intrinsic("States.Hash($$.Execution.Id, 'MD5')"),
        # No Tags: CreateModelPackage documents that a version in a model package group
        # uses the group's tags and takes no tag argument. aws.tags are on the group
        # (deploy.ensure_model_package_group); the run's metadata is above.
    }
    return parameters


def _copy_parameters(config: Config, inputs, source: str, key: str, if_match: Optional[str]) -> Dict[str, Any]:
    """CopyObject of a run's artifact to its registry key. With aws.kms_key_id the
    copy is encrypted with that key, as everything else mltp writes. `if_match`: a
    state path holding the ETag the source must still have (else the copy fails:
    the object changed after it was read)."""
    parameters: Dict[str, Any] = {
        "Bucket": inputs["EvaluationBucket"],
        "Key": inputs[key],
        "CopySource": inputs[source],
    }
    if if_match:
        parameters["CopySourceIfMatch"] = _intrinsic(if_match)
    if config.aws.kms_key_id:
        parameters["ServerSideEncryption"] = "aws:kms"
        parameters["SSEKMSKeyId"] = config.aws.kms_key_id
    return parameters


METRIC_PROPERTY_PREFIX = "metric:"


def metric_property(metric: str) -> str:
    """The CustomerMetadataProperties key holding a gate metric's value."""
    return METRIC_PROPERTY_PREFIX + metric


def gate_metrics(config: Config):
    """The gate's metrics, each once, in rule order."""
    seen = []
    for rule in config.gate:
        if rule.metric not in seen:
            seen.append(rule.metric)
    return seen


def _intrinsic(expression: str):
    """A Parameters value computed by an intrinsic function. A stepfunctions
    Placeholder whose path is the expression: the SDK renders it as "<key>.$"."""
    from stepfunctions.inputs import Placeholder

    class Intrinsic(Placeholder):
        def to_jsonpath(self):
            return expression

    return Intrinsic()


def _json_encoded(key: str):
    """An execution input string, JSON-encoded, as the SDK encodes script-mode hyperparameters."""
    return _intrinsic(f"States.Format('\"{{}}\"', {execution_input_path(key)})")


class _AslRule:
    """A Choice rule given as ASL (gate.choice_rule), as a stepfunctions rule object."""

    @staticmethod
    def of(rule: Dict[str, Any], sdk: _Sdk):
        class AslRule(sdk.BaseRule):
            def to_dict(self):
                return json.loads(json.dumps(rule))

        return AslRule()


# --------------------------------------------------------------------------- post-processing


def _add_result_selectors(states: Dict[str, Any], rules=()) -> None:
    """Keep the state data small: only what the report needs goes into $.jobs.

    The selected fields are in both the Create* response and the Describe* response
    (what `.sync` returns), so the selector holds on AWS and on emulators alike.
    ReadEvaluation parses the object's body: $.evaluation.report is evaluation.json;
    $.evaluation.sections is an empty object per metric section, for MetricSections.
    """
    states[PREPROCESSING]["ResultSelector"] = {"ProcessingJobArn.$": "$.ProcessingJobArn"}
    states[TRAINING]["ResultSelector"] = {"TrainingJobArn.$": "$.TrainingJobArn"}
    # The training metrics gate rules read (source: training): each picked by name out of
    # the job's FinalMetricDataList (DescribeTrainingJob, the .sync result) into
    # $.jobs.training.metrics.<name> as [value], [] when the job has none (training_metrics).
    selected = training_metrics.result_selector(rules)
    if selected:
        states[TRAINING]["ResultSelector"]["metrics"] = selected
    states[EVALUATION]["ResultSelector"] = {"ProcessingJobArn.$": "$.ProcessingJobArn"}
    states[READ_EVALUATION]["ResultSelector"] = {"report.$": "States.StringToJson($.Body)",
                                                 "sections": json.loads(json.dumps(gate.SECTION_DEFAULTS)),
                                                 "ETag.$": "$.ETag"}
    # The copy's ETag: `wait` hashes the registered model only while it still has it (If-Match).
    states[COPY_MODEL]["ResultSelector"] = {"ETag.$": "$.CopyObjectResult.ETag"}
    states[COPY_EVALUATION]["ResultSelector"] = {"ETag.$": "$.CopyObjectResult.ETag"}


def _drop_nulls(value: Any) -> Any:
    """Remove null members: AWS APIs reject `"X": null` where they allow X to be absent."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value
