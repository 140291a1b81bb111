"""The checks of config.yaml a schema cannot express: cross-field rules, AWS's
own lists of instance types, framework versions, container paths, cron specs;
one function per config section (`_semantic_problems` runs them all)."""

import json
import math
import os
import posixpath
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from .. import retrain_loop, spot, training_metrics
from . import channels
from ..config_schema import DEFAULT_FRAMEWORK_VERSIONS, PROCESSING_ROOT
from ..yaml_source import Document, Problem, key_path
from .algorithm_checks import algorithm_problems
from .display import _HIDE_VALUES, _show, _suggest, repr_q, shown
from .model import CODE_DIR, INPUT_DIR, OUTPUT_DIR, SPLITS, STEP_ROLES


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


def framework_row_problem(framework: str, version: str) -> Optional[str]:
    """Why a version SageMaker lists is still refused: it runs no scripts, or
    mltp has no row of what its container holds (framework_containers.py), so
    a local run could not mirror it. None when it has a row."""
    from .. import framework_containers

    reason = framework_containers.not_a_container(framework, version)
    if reason:
        return f"{framework} {version} {reason}"
    if framework_containers.row(framework, version) is None:
        listed = [v for (f, v) in framework_containers.ROWS if f == framework]
        return (f"{framework} {version}: mltp has no record of what that container holds, so a local run could not "
                f"mirror it; versions with one: {', '.join(listed[-6:])}")
    return None


_CRON_ALIASES = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_RESERVED_ENV = ("MLTP_", "SM_")


class _Problems(list):
    """Problems of one section, each placed at its key's line."""

    def __init__(self, doc: Document):
        super().__init__()
        self.doc = doc

    def add(self, path: Tuple[Any, ...], message: str) -> None:
        self.append(Problem(self.doc.line_of(path), key_path(path), message))


def _semantic_problems(doc: Document) -> List[Problem]:
    """Every check a schema cannot express, section by section (in this order)."""
    out: List[Problem] = []
    for check in (_step_problems, _gate_problems, _inference_problems, _prefix_problems, _branch_role_problems,
                  _retrain_problems, retrain_loop.problems, retrain_loop.source_problems, _container_path_problems, _notify_problems,
                  _schedule_problems, channels.problems, algorithm_problems, training_metrics.problems,
                  spot.problems):
        out.extend(check(doc))
    return out


def _step_problems(doc: Document) -> List[Problem]:
    """steps: frameworks and their versions in the region, instance types, environment, inputs, hyperparameters."""
    data = doc.value
    out = _Problems(doc)
    add = out.add

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
        if isinstance(step.get("algorithm"), str):
            version = None  # a built-in algorithm's versions are its own (algorithm_checks.py)
        if framework in DEFAULT_FRAMEWORK_VERSIONS and isinstance(version, str):
            table = framework_versions(framework)
            if table is not None:
                known = set(table["versions"]) | set(table["aliases"])
                if version not in known:
                    listed = sorted(table["versions"])[-6:]
                    add(base + ("framework_version",),
                        f"{framework} has no SageMaker container version '{version}'{_suggest(version, known)}; recent ones: {', '.join(listed)}")
                elif framework_row_problem(framework, version):
                    add(base + ("framework_version",), framework_row_problem(framework, version))
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
    return out


def _gate_problems(doc: Document) -> List[Problem]:
    """gate: what a rule needs, finite bounds, one threshold and one champion rule per metric, one path per metric."""
    data = doc.value
    out = _Problems(doc)
    add = out.add

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
    return out


def _inference_problems(doc: Document) -> List[Problem]:
    """registry.inference: SageMaker's own list of inference instance types."""
    data = doc.value
    out = _Problems(doc)
    add = out.add

    inference_types = _get(data, "registry", "inference", "instance_types")
    if isinstance(inference_types, list):
        valid = _instance_types("ProductionVariantInstanceType")
        for index, instance_type in enumerate(inference_types):
            if valid and isinstance(instance_type, str) and instance_type.startswith("ml.") and instance_type not in valid:
                add(("registry", "inference", "instance_types", index),
                    f"'{instance_type}' is not a SageMaker inference instance type{_suggest(instance_type, valid)}")
    return out


def _prefix_problems(doc: Document) -> List[Problem]:
    """aws.prefix: one spelling per key."""
    data = doc.value
    out = _Problems(doc)
    add = out.add

    prefix = _get(data, "aws", "prefix")
    if isinstance(prefix, str) and any(part in ("", ".", "..") for part in prefix.split("/")):
        # S3 keeps "a/../b" as written, but consoles, the CLI's sync and IAM policies
        # written for "a/b" do not: one key, several spellings. Refused outright.
        add(("aws", "prefix"), "must not contain '.', '..' or empty segments")
    return out


def _branch_role_problems(doc: Document) -> List[Problem]:
    """aws.branch_sagemaker_role_arn: the state machine passes it with the states
    role, in the default role's account (docs/trust.md)."""
    data = doc.value
    out = _Problems(doc)
    branch_role, default_role = _get(data, "aws", "branch_sagemaker_role_arn"), _get(data, "aws", "sagemaker_role_arn")
    role_arn = re.compile(r"^arn:[^:]+:iam::[0-9]{12}:role/")  # a malformed one is reported by the schema
    if isinstance(branch_role, str) and isinstance(default_role, str) and role_arn.match(branch_role) and \
            role_arn.match(default_role) and branch_role.split(":")[1:5:3] != default_role.split(":")[1:5:3]:
        out.add(("aws", "branch_sagemaker_role_arn"), "must be a role of the same account as aws.sagemaker_role_arn")
    return out


def _notify_problems(doc: Document) -> List[Problem]:
    """notify.topic_arn: a topic of the config's region (notifications.py)."""
    data = doc.value
    out = _Problems(doc)
    topic, region = _get(data, "notify", "topic_arn"), _get(data, "aws", "region")
    if isinstance(topic, str) and isinstance(region, str) and topic.count(":") == 5 and topic.split(":")[3] != region:
        out.add(("notify", "topic_arn"),
                f"must be a topic of aws.region {region}: EventBridge rules reach topics of their own region")
    return out


def _schedule_problems(doc: Document) -> List[Problem]:
    """schedule: a cron spec Jenkins accepts."""
    data = doc.value
    out = _Problems(doc)
    add = out.add

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
        if isinstance(outputs, list):  # names only: every one at its default path
            outputs = {name: None for name in outputs if isinstance(name, str)}
        elif not isinstance(outputs, dict):
            outputs = {name: None for name in SPLITS}
        for name, path in outputs.items():
            one(("outputs", name), path, f"{OUTPUT_DIR}/{name}")
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
