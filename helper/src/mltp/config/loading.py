"""Loading config.yaml: read (sized and decoded first), parsed, checked
(schema.py, checks.py: every problem at once, raised together as one
InvalidInput whose lines name file, line and key), then built into the typed
objects (model.py) with the schema's defaults filled in."""

import copy
import dataclasses
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .. import algorithms, yaml_source
from ..config_schema import DEFAULT_FRAMEWORK_VERSIONS, SCHEMA
from ..errors import InvalidInput
from ..yaml_source import Document, Problem, key_path
from . import channels
from .display import _HIDE_VALUES, _is_inside, display, utf8_error_line
from .model import (DEFAULT_QUIET_MINUTES, INPUT_DIR, STEP_ROLES, AwsConfig, Config, GateRule, InferenceConfig,
                    InputConfig, LogsConfig, MetricDefinition, NotifyConfig, RegistryConfig, RetrainConfig, Scalar,
                    SpotConfig, StepConfig, Steps)


def resolve_config_path(repo: Path, config: Optional[str]) -> Path:
    if not config:
        return repo / "config.yaml"
    path = Path(config)
    return path if path.is_absolute() else repo / path


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


def _problems(doc: Document) -> List[Problem]:
    """Every problem of a parsed document: the schema's, then the checks a
    schema cannot express (imported only here: a text found valid before
    never gets this far)."""
    from .checks import _semantic_problems
    from .schema import _schema_problems

    return _schema_problems(doc) + _semantic_problems(doc)


def parse(text: str, path: Path, repo: Path) -> Config:
    """The typed config of a text; InvalidInput listing every problem. A text
    found valid before (schema_cache.py) is neither parsed nor checked again."""
    from . import schema_cache

    known = schema_cache.known_valid(text)
    if known is not None:
        value, lines = known
        return _build(Document(value, lines), path, repo)
    doc = yaml_source.parse(text)
    problems = list(doc.problems)
    if not problems or doc.value is not None:
        # Duplicate keys still leave a document to check: report everything at once.
        if doc.value is None:
            problems.append(Problem(1, "(file)", "the file is empty; it needs at least version, name, aws and gate"))
        elif not isinstance(doc.value, dict):
            problems.append(Problem(1, "(top level)", "must be a mapping of keys (version, name, aws, ...)"))
        else:
            problems.extend(_problems(doc))
    if problems:
        raise InvalidInput(
            f"{display(path)}: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
            [f"{display(path)}:{p.line}: {p.key}: {p.message}" for p in sorted(problems, key=lambda p: (p.line, p.key))],
        )
    schema_cache.remember_valid(text, doc.value, doc.lines)
    return _build(doc, path, repo)


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
    default_version = DEFAULT_FRAMEWORK_VERSIONS.get(framework)
    script = raw["script"]
    algorithm = algorithms.get(raw.get("algorithm"))
    if algorithm is not None:  # no script; the algorithm's framework and image versions
        script, framework, default_version = "", algorithm.framework, algorithm.default_version
    return StepConfig(
        role=role,
        script=script,
        framework=framework,
        framework_version=raw.get("framework_version") or default_version,
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
        outputs=channels.output_paths(raw["outputs"]) if "outputs" in raw else {},
        model_destination=raw.get("model_destination"),
        test_destination=raw.get("test_destination"),
        output=raw.get("output"),
        algorithm=algorithm.name if algorithm is not None else None,
        metric_definitions=tuple(MetricDefinition(m["name"], m["regex"]) for m in raw.get("metric_definitions", [])),
        cache=bool(raw.get("cache", False)),
        cache_expire_days=int(raw.get("cache_expire_days", 30)),
        spot=SpotConfig(raw["spot"]["max_wait_minutes"]) if raw.get("spot") else None,
    )


def _steps(raw: Dict[str, Any]) -> Steps:
    """The three steps; training's channels and evaluation's test data are
    resolved against preprocessing's outputs (channels.py)."""
    pre, training, evaluation = (_step_config(role, raw[role]) for role in STEP_ROLES)
    training = dataclasses.replace(training, channels=channels.channels(raw["training"].get("channels"), pre.outputs))
    evaluation = dataclasses.replace(evaluation, test_from=channels.test_from(raw["evaluation"].get("test_from"), pre.outputs))
    return Steps(pre, training, evaluation)


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
    # So does a source (validation: the rules of one metric agree).
    sources = {r["metric"]: r["source"] for r in raw if r.get("source")}
    rules = []
    for r in raw:
        source = sources.get(r["metric"], "evaluation")
        if r.get("beat_champion"):
            better = r.get("better") or ("lower" if r["metric"] in only_max else "higher")
            rules.append(GateRule(r["metric"], beat_champion=True, by=float(r.get("by", 0)), better=better,
                                  path=paths.get(r["metric"]), source=source))
        else:
            rules.append(GateRule(r["metric"], r.get("min"), r.get("max"), path=paths.get(r["metric"]), source=source))
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
        steps=_steps(data["steps"]),
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
