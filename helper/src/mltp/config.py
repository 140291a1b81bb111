"""config.yaml version 1: loading, validation and the typed config objects.

Validation is jsonschema over `config_schema.SCHEMA` (the single definition)
plus the checks a schema cannot express (cross-field rules, AWS's own lists of
instance types, framework versions). Every problem is collected, then raised
together as one InvalidInput whose lines name file, line and key.
"""

import contextvars
import copy
import difflib
import json
import math
import os
import posixpath
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import jsonschema

from . import redaction, retrain_loop, yaml_source
from .config_schema import DEFAULT_FRAMEWORK_VERSIONS, PROCESSING_ROOT, SCHEMA
from .errors import InvalidInput
from .yaml_source import Document, Problem, key_path

Scalar = Union[str, int, float, bool]
STEP_ROLES = ("preprocessing", "training", "evaluation")


# --------------------------------------------------------------------------- typed objects


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


# --------------------------------------------------------------------------- loading


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def utf8_error_line(exc: UnicodeDecodeError) -> int:
    return exc.object[: exc.start].count(b"\n") + 1


def resolve_config_path(repo: Path, config: Optional[str]) -> Path:
    if not config:
        return repo / "config.yaml"
    path = Path(config)
    return path if path.is_absolute() else repo / path


# When the config file lies outside the model repo (--config /elsewhere), its
# values are not echoed in errors: it may be a file that was never meant to be
# shown in a build log. Problems then name file, line and key only.
_HIDE_VALUES: "contextvars.ContextVar[bool]" = contextvars.ContextVar("mltp_hide_values", default=False)
HIDDEN = "(value not shown: the config file is outside the model repo)"


def repr_q(text: str) -> str:
    return f"'{text}'"


def shown(text: str) -> str:
    """`text`, or a placeholder when the config's values must not be echoed."""
    return HIDDEN if _HIDE_VALUES.get() else text


def _is_inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError, RuntimeError):
        return False


def load(repo: Union[str, Path], config: Optional[str] = None) -> Config:
    """Load and validate a model repo's config; raise InvalidInput listing every problem."""
    repo = Path(repo)
    path = resolve_config_path(repo, config)
    if not repo.is_dir():
        raise InvalidInput(f"{display(repo)}: model repo not found (not a directory)")
    if not path.is_file():
        raise InvalidInput(f"{display(path)}: config file not found (a model repo needs config.yaml; see docs/contract.md)")
    try:
        # Sized before it is read: a huge file would otherwise be read (and decoded) whole.
        size = path.stat().st_size
        if size > yaml_source.MAX_BYTES:
            raise InvalidInput(f"{display(path)}: file is larger than {yaml_source.MAX_BYTES // 1024} KiB; "
                               f"a config.yaml is a page of settings")
        with open(path, "rb") as handle:
            raw = handle.read(yaml_source.MAX_BYTES + 1)
    except OSError as exc:
        raise InvalidInput(f"{display(path)}: cannot be read ({exc.strerror or exc})")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{display(path)}:{utf8_error_line(exc)}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    token = _HIDE_VALUES.set(not _is_inside(path, repo))
    try:
        return parse(text, path, repo)
    finally:
        _HIDE_VALUES.reset(token)


def parse(text: str, path: Path, repo: Path) -> Config:
    doc = yaml_source.parse(text)
    problems = list(doc.problems)
    if not problems or doc.value is not None:
        # Duplicate keys still leave a document to check: report everything at once.
        if doc.value is None:
            problems.append(Problem(1, "(file)", "the file is empty; it needs at least version, name, aws and gate"))
        elif not isinstance(doc.value, dict):
            problems.append(Problem(1, "(top level)", "must be a mapping of keys (version, name, aws, ...)"))
        else:
            problems.extend(_schema_problems(doc))
            problems.extend(_semantic_problems(doc))
    if problems:
        raise InvalidInput(
            f"{display(path)}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
            [f"{display(path)}:{p.line}: {p.key}: {p.message}" for p in sorted(problems, key=lambda p: (p.line, p.key))],
        )
    return _build(doc, path, repo)


# --------------------------------------------------------------------------- schema validation


@lru_cache(maxsize=None)
def _whole(pattern: str) -> "re.Pattern[str]":
    """A schema pattern that must match the whole value. JSON Schema patterns are
    searched, and in Python a final '$' also matches before a trailing newline:
    "us-east-1\\n" would pass '^...$'. The final '$' becomes '\\Z' (end of text)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern_rule(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not _whole(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_VALIDATOR = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern_rule})(SCHEMA)
_TYPE_NAMES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "object": "a mapping of keys", "array": "a list", "null": "null"}


def _schema_problems(doc: Document) -> List[Problem]:
    """One problem per key: a value breaking both a length and a pattern rule
    gets the pattern's plain-language reason, which covers both."""
    by_key: Dict[Tuple[int, str], Tuple[int, Problem]] = {}
    ordered: List[Problem] = []
    for error in _VALIDATOR.iter_errors(doc.value):
        rank = 0 if error.validator == "pattern" else 1
        for problem in _explain(error, doc):
            slot = (problem.line, problem.key)
            if error.validator in ("additionalProperties", "required"):
                ordered.append(problem)
            elif slot not in by_key or rank < by_key[slot][0]:
                by_key[slot] = (rank, problem)
    return ordered + [problem for _, problem in by_key.values()]


def _show(value: Any) -> str:
    if _HIDE_VALUES.get():
        return HIDDEN
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _explain(error: jsonschema.ValidationError, doc: Document) -> List[Problem]:
    path = tuple(error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    in_names = "propertyNames" in error.relative_schema_path
    if in_names:
        # jsonschema reports a bad key name against the parent object.
        name = error.instance
        child = path + (name,)
        hint = _name_hint(error) or f"is not a valid name ({kind})"
        if redaction.looks_secret(name):  # a pasted token is not echoed (redaction.shown_key)
            return [Problem(doc.line_of(child), key_path(path), f"a key (name not shown: it looks like a secret) {hint}")]
        return [Problem(doc.line_of(child), key_path(child), f"key '{yaml_source.printable(name)}' {hint}")]
    line = doc.line_of(path)
    key = key_path(path)
    if kind == "additionalProperties":
        allowed = list(error.schema.get("properties", {}))
        extras = [k for k in error.instance if k not in allowed]
        return [
            Problem(doc.line_of(path + (k,)), key_path(path + (k,)), f"unknown key '{k}'{_suggest(k, allowed)}")
            if redaction.shown_key(k) else  # not a plausible key name: maybe a pasted secret, not echoed
            Problem(doc.line_of(path + (k,)), key_path(path), f"an unknown key (name not shown){_suggest(k, allowed)}")
            for k in extras
        ]
    if kind == "required":
        missing = re.match(r"'(.*)' is a required property", error.message)
        name = missing.group(1) if missing else error.message
        return [Problem(line, key, f"missing required key '{name}'")]
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = " or ".join(_TYPE_NAMES.get(t, t) for t in wanted if t != "null")
        return [Problem(line, key, f"must be {names}, not {_show(error.instance)}")]
    if kind == "enum":
        options = [str(o) for o in error.validator_value]
        return [Problem(line, key, f"must be one of {', '.join(options)}, not {_show(error.instance)}{_suggest(error.instance, options)}")]
    if kind == "const":
        return [Problem(line, key, f"must be {_show(error.validator_value)}, not {_show(error.instance)}")]
    if kind == "pattern":
        hint = schema.get("x-error") or f"must match {error.validator_value}"
        return [Problem(line, key, f"{_show(error.instance)} {hint}")]
    limits = {
        "minimum": "must be at least {v}",
        "maximum": "must be at most {v}",
        "minLength": "must be at least {v} characters long",
        "maxLength": "must be at most {v} characters long",
        "minItems": "needs at least {v} item(s)",
        "maxItems": "takes at most {v} items",
        "maxProperties": "takes at most {v} entries",
    }
    if kind in limits:
        return [Problem(line, key, limits[kind].format(v=error.validator_value) + f", not {_show(error.instance)}")]
    return [Problem(line, key, error.message)]


def _name_hint(error: jsonschema.ValidationError) -> Optional[str]:
    schema = error.schema if isinstance(error.schema, dict) else {}
    if error.validator == "pattern" and schema.get("x-error"):
        return schema["x-error"]
    if error.validator in ("minLength", "maxLength"):
        return f"must be {'at least' if error.validator == 'minLength' else 'at most'} {error.validator_value} characters long"
    return None


# --------------------------------------------------------------------------- checks a schema cannot express


def _get(value: Any, *path: Any) -> Any:
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or part >= len(value):
                return None
        elif not isinstance(value, dict):
            return None
        else:
            if part not in value:
                return None
        value = value[part]
    return value


_INSTANCE_SHAPES = ("ProcessingInstanceType", "TrainingInstanceType", "ProductionVariantInstanceType")


@lru_cache(maxsize=1)
def _instance_type_lists() -> Dict[str, List[str]]:
    """AWS's own lists of SageMaker instance types, from botocore's service model
    (a dependency already: a file read, never a network call). Reading that
    model costs about half a second, so the three lists are kept in a small file
    in the user's cache, named after the botocore version they came from."""
    import botocore

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mltp"
    path = cache / f"sagemaker-instance-types-{botocore.__version__}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    from botocore.loaders import create_loader

    shapes = create_loader().load_service_model("sagemaker", "service-2")["shapes"]
    lists = {name: list(shapes.get(name, {}).get("enum", [])) for name in _INSTANCE_SHAPES}
    try:
        cache.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(lists))
        partial.replace(path)
    except OSError:  # a read-only home must not block validation
        pass
    return lists


def _instance_types(shape: str) -> List[str]:
    try:
        return _instance_type_lists().get(shape, [])
    except Exception:  # an unexpected botocore layout must not block validation
        return []


@lru_cache(maxsize=None)
def framework_versions(framework: str) -> Optional[Dict[str, Any]]:
    """The versions block of the SageMaker SDK's image URI table for a framework,
    read as a file so `validate` does not pay for importing the SDK (about 2 s)."""
    import importlib.util

    spec = importlib.util.find_spec("sagemaker")
    if not spec or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base) / "image_uri_config" / f"{framework}.json"
        if candidate.is_file():
            data = json.loads(candidate.read_text())
            versions = data.get("versions") or data.get("training", {}).get("versions") or {}
            aliases = data.get("version_aliases") or data.get("training", {}).get("version_aliases") or {}
            return {"versions": versions, "aliases": aliases}
    return None


_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_RESERVED_ENV = ("MLTP_", "SM_")


def _semantic_problems(doc: Document) -> List[Problem]:
    data = doc.value
    out: List[Problem] = []

    def add(path: Tuple[Any, ...], message: str) -> None:
        out.append(Problem(doc.line_of(path), key_path(path), message))

    region = _get(data, "aws", "region")
    processing_types = training_types = None
    for role in STEP_ROLES:
        step = _get(data, "steps", role)
        if not isinstance(step, dict):
            continue
        base = ("steps", role)
        framework = step.get("framework", "sklearn")
        if framework == "image" and not step.get("image_uri"):
            add(base + ("image_uri",) if "image_uri" in step else base + ("framework",), "framework 'image' needs image_uri")
        if framework in DEFAULT_FRAMEWORK_VERSIONS and step.get("image_uri"):
            add(base + ("image_uri",), f"image_uri is only used with framework: image (this step uses {framework})")
        version = step.get("framework_version")
        if framework in DEFAULT_FRAMEWORK_VERSIONS and isinstance(version, str):
            table = framework_versions(framework)
            if table is not None:
                known = set(table["versions"]) | set(table["aliases"])
                if version not in known:
                    listed = sorted(table["versions"])[-6:]
                    add(base + ("framework_version",),
                        f"{framework} has no SageMaker container version '{version}'{_suggest(version, known)}; recent ones: {', '.join(listed)}")
                elif isinstance(region, str) and version in table["versions"]:
                    registries = table["versions"][version].get("registries")
                    if registries and region not in registries:
                        add(base + ("framework_version",), f"{framework} {version} containers are not offered in region {region}")
        instance_type = step.get("instance_type")
        if isinstance(instance_type, str) and re.match(r"^ml\.[a-z0-9]+\.[a-z0-9]+$", instance_type):
            if role == "training":
                training_types = training_types or _instance_types("TrainingInstanceType")
                valid = training_types
            else:
                processing_types = processing_types or _instance_types("ProcessingInstanceType")
                valid = processing_types
            if valid and instance_type not in valid:
                add(base + ("instance_type",),
                    f"{shown(repr_q(instance_type))} is not a SageMaker {'training' if role == 'training' else 'processing'} instance type{_suggest(instance_type, valid) if not _HIDE_VALUES.get() else ''}")
        env = step.get("environment")
        if isinstance(env, dict):
            for name in env:
                if isinstance(name, str) and name.startswith(_RESERVED_ENV):
                    add(base + ("environment", name), f"'{name}' is set by mltp and SageMaker (MLTP_* and SM_* are reserved)")
            for name, value in env.items():
                if isinstance(value, str) and len(value) > 256:
                    add(base + ("environment", name), "values are limited to 256 characters by SageMaker")
        inputs = step.get("inputs")
        if isinstance(inputs, list):
            seen: Dict[str, int] = {}
            for index, item in enumerate(inputs):
                name = _get(item, "name")
                if not isinstance(name, str):
                    continue
                if name in seen:
                    add(base + ("inputs", index, "name"), f"input name '{name}' is used twice (inputs[{seen[name]}] has it)")
                seen.setdefault(name, index)
                if name == "code":
                    add(base + ("inputs", index, "name"), "'code' is reserved: the model repo's code is mounted there")
        hps = step.get("hyperparameters")
        if isinstance(hps, dict):
            for name, value in hps.items():
                if isinstance(value, str) and len(value) > 2500:
                    add(base + ("hyperparameters", name), "values are limited to 2500 characters by SageMaker")

    gate = data.get("gate")
    if isinstance(gate, list):
        seen_metrics: Dict[Tuple[str, bool], int] = {}
        seen_paths: Dict[str, Tuple[int, str]] = {}
        for index, rule in enumerate(gate):
            if not isinstance(rule, dict):
                continue
            low, high = rule.get("min"), rule.get("max")
            champion = rule.get("beat_champion") is True
            if champion and ("min" in rule or "max" in rule):
                add(("gate", index, "beat_champion"),
                    "a champion rule takes no min or max: put the thresholds in a rule of their own for the same metric")
            elif not champion and ("by" in rule or "better" in rule):
                key = "by" if "by" in rule else "better"
                add(("gate", index, key), f"{key} applies to champion rules only: add beat_champion: true (see docs/contract.md)")
            elif not champion and "min" not in rule and "max" not in rule:
                add(("gate", index), "a rule needs min, max or both")
            for bound, number in (("min", low), ("max", high)):
                if isinstance(number, float) and not math.isfinite(number):
                    # NaN passes every comparison check a schema makes, and is not JSON:
                    # the state machine definition could not even hold it.
                    add(("gate", index, bound), f"must be a finite number, not {_yaml_number(number)}")
                    low, high = (None, high) if bound == "min" else (low, None)
            if isinstance(low, (int, float)) and isinstance(high, (int, float)) and not isinstance(low, bool) and low > high:
                add(("gate", index, "min"), f"min {low} is greater than max {high}: no value can pass")
            metric = rule.get("metric")
            if isinstance(metric, str):
                # One threshold rule and one champion rule per metric.
                slot = (metric, champion)
                if slot in seen_metrics:
                    what = "a champion rule" if champion else "a rule"
                    hint = "" if champion else "; put min and max in one rule"
                    add(("gate", index, "metric"), f"metric '{metric}' already has {what} (gate[{seen_metrics[slot]}]){hint}")
                seen_metrics.setdefault(slot, index)
                path = rule.get("path")
                if isinstance(path, str):
                    if metric in seen_paths and seen_paths[metric][1] != path:
                        other, given = seen_paths[metric]
                        add(("gate", index, "path"), f"metric '{metric}' already reads '{given}' (gate[{other}]): "
                                                     "the rules of one metric read one value")
                    seen_paths.setdefault(metric, (index, path))

    inference_types = _get(data, "registry", "inference", "instance_types")
    if isinstance(inference_types, list):
        valid = _instance_types("ProductionVariantInstanceType")
        for index, instance_type in enumerate(inference_types):
            if valid and isinstance(instance_type, str) and instance_type.startswith("ml.") and instance_type not in valid:
                add(("registry", "inference", "instance_types", index),
                    f"'{instance_type}' is not a SageMaker inference instance type{_suggest(instance_type, valid)}")

    prefix = _get(data, "aws", "prefix")
    if isinstance(prefix, str) and any(part in ("", ".", "..") for part in prefix.split("/")):
        # S3 keeps "a/../b" as written, but consoles, the CLI's sync and IAM policies
        # written for "a/b" do not: one key, several spellings. Refused outright.
        add(("aws", "prefix"), "must not contain '.', '..' or empty segments")
    branch_role, default_role = _get(data, "aws", "branch_sagemaker_role_arn"), _get(data, "aws", "sagemaker_role_arn")
    role_arn = re.compile(r"^arn:[^:]+:iam::[0-9]{12}:role/")  # a malformed one is reported by the schema
    if isinstance(branch_role, str) and isinstance(default_role, str) and role_arn.match(branch_role) and \
            role_arn.match(default_role) and branch_role.split(":")[1:5:3] != default_role.split(":")[1:5:3]:
        # The state machine passes it with the states role, in the default role's account.
        add(("aws", "branch_sagemaker_role_arn"), "must be a role of the same account as aws.sagemaker_role_arn")
    out.extend(_retrain_problems(doc))
    out.extend(retrain_loop.problems(doc))  # retraining on its own outputs would never stop
    out.extend(_container_path_problems(doc))
    topic = _get(data, "notify", "topic_arn")
    if isinstance(topic, str) and isinstance(region, str) and topic.count(":") == 5 and topic.split(":")[3] != region:
        add(("notify", "topic_arn"), f"must be a topic of aws.region {region}: EventBridge rules reach topics of their own region")

    schedule = data.get("schedule")
    if isinstance(schedule, str):
        message = cron_problem(schedule)
        if message:
            add(("schedule",), message)
    return out


# Jenkins' cron fields and their ranges (hudson.scheduler.CronTab); 7 is Sunday too.
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_TERM = re.compile(r"(?:(?P<star>\*)|(?P<h>H)(?:\((?P<ha>\d+)-(?P<hb>\d+)\))?|(?P<a>\d+)(?:-(?P<b>\d+))?)(?:/(?P<step>\d+))?")


def _cron_term(piece: str, low: int, high: int) -> Optional[str]:
    """Why one comma-separated term of a field is not valid, or None. Follows
    Jenkins' grammar: *, H, H(a-b), n, a-b, the first four with an optional /step."""
    match = _CRON_TERM.fullmatch(piece)
    if not match:
        return "is not *, H, H(a-b), a number or a range"
    if match.group("step") is not None:
        if match.group("a") is not None and match.group("b") is None:
            return "takes a step only after *, H or a range"
        step = int(match.group("step"))
        if step < 1:
            return "has a step of 0; steps start at 1"
        if step > high - low + 1:
            return f"has a step of {step}, larger than its range {low}-{high}"
    pairs = [("ha", "hb"), ("a", "b")]
    for first, second in pairs:
        if match.group(first) is None:
            continue
        a = int(match.group(first))
        b = int(match.group(second)) if match.group(second) is not None else a
        for number in (a, b):
            if not low <= number <= high:
                return f"has {number}, outside {low}-{high}"
        if a > b:
            return f"has the range {a}-{b}, which is backwards (did you mean {b}-{a}?)"
    return None


def _yaml_number(number: float) -> str:
    if math.isnan(number):
        return ".nan"
    return ".inf" if number > 0 else "-.inf"

def _retrain_problems(doc: Document) -> List[Problem]:
    """`retrain` watches preprocessing inputs by name, and needs one way to tell
    that a burst of objects is complete: a quiet period or a marker, not both."""
    retrain = _get(doc.value, "retrain")
    if not isinstance(retrain, dict):
        return []
    out: List[Problem] = []
    names = retrain.get("on_inputs")
    inputs = _get(doc.value, "steps", "preprocessing", "inputs")
    known = [i.get("name") for i in inputs if isinstance(i, dict)] if isinstance(inputs, list) else []
    if isinstance(names, list):
        for index, name in enumerate(names):
            if isinstance(name, str) and name not in known:
                where = f"one of {', '.join(str(k) for k in known)}" if known else "an input, but steps.preprocessing.inputs is empty"
                out.append(Problem(doc.line_of(("retrain", "on_inputs", index)), key_path(("retrain", "on_inputs", index)),
                                   f"'{name}' is not an input of steps.preprocessing.inputs; it must be {where}{_suggest(name, [str(k) for k in known])}"))
    sources = {i.get("name"): i.get("source") for i in inputs if isinstance(i, dict)} if isinstance(inputs, list) else {}
    watched = [(index, name, sources[name]) for index, name in enumerate(names or [])
               if isinstance(name, str) and isinstance(sources.get(name), str)] if isinstance(names, list) else []
    for index, name, source in watched:
        for _, other, other_source in watched:
            if other != name and source != other_source and source.startswith(other_source.rstrip("/") + "/"):
                out.append(Problem(doc.line_of(("retrain", "on_inputs", index)), key_path(("retrain", "on_inputs", index)),
                                   f"'{name}' ({source}) lies inside '{other}' ({other_source}): S3 refuses two "
                                   "notifications on overlapping prefixes; watch only one of them"))
    if "quiet_minutes" in retrain and "marker" in retrain:
        out.append(Problem(doc.line_of(("retrain", "marker")), "retrain.marker",
                           "set quiet_minutes or marker, not both (see docs/contract.md)"))
    return out


def _processing_paths(data: Any, role: str) -> List[Tuple[Tuple[Any, ...], str, bool]]:
    """(key path, container path, set in the file) of every folder a processing
    step's job uses, the code folder first; defaults where the file sets none."""
    base = ("steps", role)
    step = _get(data, *base)
    step = step if isinstance(step, dict) else {}
    paths: List[Tuple[Tuple[Any, ...], str, bool]] = [((), CODE_DIR, False)]

    def one(key: Tuple[Any, ...], value: Any, default: str) -> None:
        if value is None:
            paths.append((base + key, default, False))
        elif isinstance(value, str):
            paths.append((base + key, value, True))

    if role == "preprocessing":
        inputs = step.get("inputs")
        for index, item in enumerate(inputs if isinstance(inputs, list) else []):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                one(("inputs", index, "destination"), item.get("destination"), f"{INPUT_DIR}/{item['name']}")
        outputs = step.get("outputs")
        outputs = outputs if isinstance(outputs, dict) else {}
        for split in SPLITS:
            one(("outputs", split), outputs.get(split), f"{OUTPUT_DIR}/{split}")
    else:
        one(("model_destination",), step.get("model_destination"), f"{PROCESSING_ROOT}/model")
        one(("test_destination",), step.get("test_destination"), f"{INPUT_DIR}/test")
        one(("output",), step.get("output"), OUTPUT_DIR)
    return paths


def _input_holds_code(first: Tuple[Tuple[Any, ...], str, bool], second: Tuple[Tuple[Any, ...], str, bool]) -> bool:
    """The one overlap SageMaker's own processors make: an input downloaded to a
    folder that holds the code folder, e.g. `destination: /opt/ml/processing/input`
    with the code in /opt/ml/processing/input/code. Scripts written for
    SKLearnProcessor read their data there, so it is allowed; an output there,
    or an input inside the code folder, is not."""
    code, other = (first, second) if first[0] == () else (second, first) if second[0] == () else (None, None)
    if code is None or other is None:
        return False
    return "inputs" in other[0] and code[1].startswith(other[1] + "/")


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _container_path_problems(doc: Document) -> List[Problem]:
    """Container paths must be written one way (normalised: a job downloads and
    uploads by path, and `a/../b` would name a folder twice) and must not overlap
    within a step: a folder inside another would mix one input's files into
    another's, or upload an input as an output. The schema already holds them
    to absolute paths under /opt/ml/processing/."""
    out: List[Problem] = []
    prefix = PROCESSING_ROOT + "/"
    for role in ("preprocessing", "evaluation"):
        paths = _processing_paths(doc.value, role)
        clean: List[Tuple[Tuple[Any, ...], str, bool]] = []
        for key, value, explicit in paths:
            if not explicit:
                clean.append((key, value, explicit))
                continue
            if not value.startswith(prefix):
                continue  # the schema reports it
            normal = posixpath.normpath(value)
            if normal != value:
                hint = f" (did you mean '{normal}'?)" if normal.startswith(prefix) and not _HIDE_VALUES.get() else ""
                out.append(Problem(doc.line_of(key), key_path(key),
                                   f"{_show(value)} must be a normalised path: no '.' or '..' segments, "
                                   f"no '//' and no trailing '/'{hint}"))
                continue
            clean.append((key, value, explicit))
        reported = set()
        for later in range(len(clean)):
            for earlier in range(later):
                first, second = clean[earlier], clean[later]
                if not _overlap(first[1], second[1]) or _input_holds_code(first, second):
                    continue
                # Reported once, on a key the file sets: the later one when both are.
                here, there = (second, first) if second[2] else (first, second)
                if not here[2] or here[0] in reported:
                    continue
                reported.add(here[0])
                value, other = here[1], there[1]
                relation = ("is the same folder as" if value == other
                            else "lies inside" if value.startswith(other + "/") else "contains")
                what = ("the code folder " + CODE_DIR + " (the model repo's code is put there)" if there[0] == ()
                        else f"{key_path(there[0])} ({_show(other)})")
                out.append(Problem(doc.line_of(here[0]), key_path(here[0]),
                                   f"{_show(value)} {relation} {what}: the folders of a job must not overlap"))
    local_problems = []
    inputs = _get(doc.value, "steps", "preprocessing", "inputs")
    for index, item in enumerate(inputs if isinstance(inputs, list) else []):
        local = _get(item, "local")
        if isinstance(local, str) and not local.startswith("/"):
            parts = local.replace("\\", "/").split("/")
            depth = 0
            for part in parts:
                depth += -1 if part == ".." else 0 if part in ("", ".") else 1
                if depth < 0:
                    key = ("steps", "preprocessing", "inputs", index, "local")
                    local_problems.append(Problem(doc.line_of(key), key_path(key),
                                                  f"{_show(local)} leaves the model repo: give a path inside it, "
                                                  "or an absolute path"))
                    break
    return out + local_problems


def cron_problem(spec: str) -> Optional[str]:
    """Checks a Jenkins cron spec as Jenkins would (5 fields with their ranges,
    steps, H, H(a-b), or @daily...), so a schedule Jenkins would refuse fails
    `validate` on the branch instead of failing the default branch after the merge."""
    if any(ch in spec for ch in "\n\r") or not spec.isprintable():
        return "must be one line: newlines and control characters are not allowed"
    text = spec.strip()
    if not text:
        return "is empty; use null for no schedule"
    if text.startswith("@"):
        if text in _CRON_ALIASES:
            return None
        return f"{shown(repr_q(spec))} is not a cron spec: the aliases are {', '.join(sorted(_CRON_ALIASES))}"
    fields = text.split()
    if len(fields) != 5:
        return f"{shown(repr_q(spec))} is not a cron spec: it needs 5 fields (minute hour day month weekday), e.g. 'H 3 * * 1'"
    for (name, low, high), part in zip(_CRON_FIELDS, fields):
        for piece in part.split(","):
            reason = _cron_term(piece, low, high)
            if reason:
                return f"{shown(repr_q(spec))} is not a cron spec: the {name} field '{part}' {reason}"
    return None


# --------------------------------------------------------------------------- building typed objects


def _with_defaults(schema: Dict[str, Any], value: Any) -> Any:
    """Fill in the schema's defaults, recursively, on an already valid value."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = _with_defaults(sub, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        value = [_with_defaults(schema["items"], item) for item in value]
    return value


def _text(value: Scalar) -> str:
    """SageMaker maps are string to string; YAML gives numbers and booleans too."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _step_config(role: str, raw: Dict[str, Any]) -> StepConfig:
    framework = raw["framework"]
    return StepConfig(
        role=role,
        script=raw["script"],
        framework=framework,
        framework_version=raw.get("framework_version") or DEFAULT_FRAMEWORK_VERSIONS.get(framework),
        image_uri=raw.get("image_uri"),
        instance_type=raw["instance_type"],
        instance_count=raw["instance_count"],
        volume_size_gb=raw["volume_size_gb"],
        max_runtime_minutes=raw["max_runtime_minutes"],
        environment={k: _text(v) for k, v in raw.get("environment", {}).items()},
        inputs=tuple(InputConfig(i["name"], i["source"], i.get("destination") or f"{INPUT_DIR}/{i['name']}", i.get("local"))
                     for i in raw.get("inputs", [])),
        arguments=tuple(_text(a) for a in raw.get("arguments", [])),
        hyperparameters=dict(raw.get("hyperparameters", {})),
        outputs=dict(raw["outputs"]) if "outputs" in raw else {},
        model_destination=raw.get("model_destination"),
        test_destination=raw.get("test_destination"),
        output=raw.get("output"),
    )


def _retrain_config(data: Dict[str, Any]) -> Optional[RetrainConfig]:
    raw = data.get("retrain")
    if not raw:
        return None
    inputs = {i.name: i for i in _step_config("preprocessing", data["steps"]["preprocessing"]).inputs}
    marker = raw.get("marker")
    return RetrainConfig(
        on_inputs=tuple(inputs[name] for name in raw["on_inputs"]),
        quiet_minutes=None if marker else raw.get("quiet_minutes", DEFAULT_QUIET_MINUTES),
        marker=marker,
    )


def _gate_rules(raw: List[Dict[str, Any]]) -> Tuple[GateRule, ...]:
    """A champion rule's direction defaults from the metric's threshold rule: a
    metric bounded by max only (an error rate) is better lower, any other higher."""
    only_max = {r["metric"] for r in raw if "max" in r and "min" not in r and not r.get("beat_champion")}
    # A path belongs to the metric: given on one of its rules, it applies to both (validation: they agree).
    paths = {r["metric"]: r["path"] for r in raw if r.get("path")}
    rules = []
    for r in raw:
        if r.get("beat_champion"):
            better = r.get("better") or ("lower" if r["metric"] in only_max else "higher")
            rules.append(GateRule(r["metric"], beat_champion=True, by=float(r.get("by", 0)), better=better,
                                  path=paths.get(r["metric"])))
        else:
            rules.append(GateRule(r["metric"], r.get("min"), r.get("max"), path=paths.get(r["metric"])))
    return tuple(rules)


def _build(doc: Document, path: Path, repo: Path) -> Config:
    data = _with_defaults(SCHEMA, copy.deepcopy(doc.value))
    aws, registry = data["aws"], data["registry"]
    inference = registry["inference"]
    return Config(
        path=path,
        repo=repo,
        version=data["version"],
        name=data["name"],
        description=data.get("description"),
        aws=AwsConfig(
            region=aws["region"],
            bucket=aws["bucket"],
            prefix=aws["prefix"],
            sagemaker_role_arn=aws["sagemaker_role_arn"],
            states_role_arn=aws["states_role_arn"],
            kms_key_id=aws["kms_key_id"],
            tags={str(k): _text(v) for k, v in aws["tags"].items()},
            branch_sagemaker_role_arn=aws["branch_sagemaker_role_arn"],
        ),
        steps=Steps(*(_step_config(role, data["steps"][role]) for role in STEP_ROLES)),
        gate=_gate_rules(data["gate"]),
        registry=RegistryConfig(
            model_package_group=registry.get("model_package_group") or data["name"],
            approval_status=registry["approval_status"],
            inference=InferenceConfig(
                tuple(inference["instance_types"]), tuple(inference["content_types"]), tuple(inference["response_types"])
            ),
        ),
        schedule=data.get("schedule"),
        retrain=_retrain_config(data),
        logs=LogsConfig(retention_days=data["logs"]["retention_days"]),
        notify=NotifyConfig(data["notify"]["topic_arn"], tuple(data["notify"]["events"])) if data.get("notify") else None,
        lines={key_path(p): line for p, line in doc.lines.items()},
    )
