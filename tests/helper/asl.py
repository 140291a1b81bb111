"""Test helpers for state machine definitions: resolve a Task's Parameters the way
Step Functions would for a given execution input, and check them against the AWS
API model botocore ships (required members, types, and the length, count and
pattern constraints that botocore's own validator leaves to the service)."""

import hashlib
import json
import re
from typing import Any, Dict, Iterator, List, Tuple

import botocore.session
import regex  # statelint's dependency; understands the \p{L} classes of AWS patterns
from botocore.validate import ParamValidator

_RESOURCE = re.compile(r"^arn:[a-z-]+:states:::(?:aws-sdk:)?(?P<service>[a-z0-9-]+):(?P<action>[A-Za-z]+)(?:\.sync)?$")
_INPUT_PATH = re.compile(r"^\$\$\.Execution\.Input(?:\.(?P<dot>\w+)|\['(?P<bracket>\w+)'\])$")
_FORMAT = re.compile(r"^States\.Format\('(?P<template>(?:[^'\\]|\\.)*)', (?P<path>[^)]+)\)$")
_HASH = re.compile(r"^States\.Hash\((?P<path>[^,]+), '(?P<algorithm>[A-Z0-9-]+)'\)$")
_SESSION = botocore.session.get_session()


def operation(resource: str):
    """botocore's operation model for a Task's Resource ARN."""
    match = _RESOURCE.match(resource)
    assert match, f"not a service integration resource: {resource}"
    action = match["action"]
    model = _SESSION.get_service_model(match["service"])
    return model.operation_model(action[0].upper() + action[1:])


def task_states(definition: Dict[str, Any]) -> Iterator[Tuple[str, Dict[str, Any]]]:
    for name, state in sorted(definition["States"].items()):
        if state["Type"] == "Task":
            yield name, state


def nulls(value: Any, path: str = "$") -> List[str]:
    """JSON paths of every null in a document."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in nulls(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in nulls(v, f"{path}[{i}]")]
    return []


def context(execution_input: Dict[str, Any], execution_id: str, state: Any = None) -> Dict[str, Any]:
    """`state`: the state data `$.` paths read (default: the execution input, as at the start)."""
    return {"Execution": {"Input": execution_input, "Id": execution_id},
            "State": execution_input if state is None else state}


_STATE_STEP = re.compile(r"\.(?P<dot>[A-Za-z_][A-Za-z0-9_]*)|\['(?P<bracket>[^']+)'\]|\[(?P<index>[0-9]+)\]")


def state_value(path: str, state: Any) -> Any:
    """A `$.a.b['c-d'].e[0]` path into the state data."""
    assert path.startswith("$"), path
    rest, value = path[1:], state
    while rest:
        match = _STATE_STEP.match(rest)
        assert match, f"unsupported state path {path}"
        if match["index"] is not None:
            index = int(match["index"])
            assert isinstance(value, list) and index < len(value), f"{path}: no item {index} in the state data"
            value = value[index]
        else:
            key = match["dot"] or match["bracket"]
            assert isinstance(value, dict) and key in value, f"{path}: no {key} in the state data"
            value = value[key]
        rest = rest[match.end():]
    return value


def evaluate(expression: str, ctx: Dict[str, Any]) -> Any:
    """The value of a Parameters `.$` expression. Only the forms mltp's definition uses
    are known; anything else fails, so a new form gets a deliberate test update."""
    match = _INPUT_PATH.match(expression)
    if match:
        key = match["dot"] or match["bracket"]
        assert key in ctx["Execution"]["Input"], f"{expression}: no execution input key {key}"
        return ctx["Execution"]["Input"][key]
    if expression == "$$.Execution.Id":
        return ctx["Execution"]["Id"]
    if expression.startswith("$."):
        return state_value(expression, ctx["State"])
    match = _FORMAT.match(expression)
    if match:
        template = match["template"].replace("\\'", "'")
        value = evaluate(match["path"], ctx)
        assert template.count("{}") == 1, expression
        return template.replace("{}", str(value))
    match = _HASH.match(expression)
    if match:
        algorithm = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}[match["algorithm"]]
        return hashlib.new(algorithm, str(evaluate(match["path"], ctx)).encode()).hexdigest()
    raise AssertionError(f"unknown Parameters expression: {expression}")


def resolve(parameters: Any, ctx: Dict[str, Any]) -> Any:
    """Parameters with each `X.$` replaced by `X` and its value for this execution."""
    if isinstance(parameters, dict):
        out = {}
        for key, value in parameters.items():
            if key.endswith(".$"):
                out[key[:-2]] = evaluate(value, ctx)
            else:
                out[key] = resolve(value, ctx)
        return out
    if isinstance(parameters, list):
        return [resolve(v, ctx) for v in parameters]
    return parameters


def _constraint_errors(value: Any, shape, path: str) -> List[str]:
    """What botocore's ParamValidator does not check: max lengths and counts, patterns, enums."""
    errors: List[str] = []
    meta = shape.metadata
    kind = shape.type_name
    if kind == "string" and isinstance(value, str):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} characters, at most {meta['max']}")
        if meta.get("pattern") and not regex.fullmatch(meta["pattern"], value):
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of the API's values")
    elif kind in ("integer", "long") and isinstance(value, int):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{path}: {value} is above {meta['max']}")
    elif kind == "list" and isinstance(value, list):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} items, at most {meta['max']}")
        for i, item in enumerate(value):
            errors.extend(_constraint_errors(item, shape.member, f"{path}[{i}]"))
    elif kind == "map" and isinstance(value, dict):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{path}: {len(value)} entries, at most {meta['max']}")
        for k, v in value.items():
            errors.extend(_constraint_errors(k, shape.key, f"{path} key {k!r}"))
            errors.extend(_constraint_errors(v, shape.value, f"{path}.{k}"))
    elif kind == "structure" and isinstance(value, dict):
        for k, v in value.items():
            if k in shape.members:
                errors.extend(_constraint_errors(v, shape.members[k], f"{path}.{k}"))
    return errors


def api_errors(resource: str, parameters: Dict[str, Any]) -> List[str]:
    """Every problem botocore's model finds in resolved Parameters (empty when valid)."""
    op = operation(resource)
    report = ParamValidator().validate(parameters, op.input_shape)
    errors = [line for line in report.generate_report().splitlines() if line.strip()] if report.has_errors() else []
    errors.extend(_constraint_errors(parameters, op.input_shape, op.name))
    return errors


# --------------------------------------------------------------------------- running on moto


def for_emulator(definition_text: str) -> str:
    """moto's state machine interpreter has no `.sync` for SageMaker; the request-response
    form of the same call creates the job (with the same Parameters) and returns its ARN."""
    return definition_text.replace(".sync\"", "\"")


def patch_moto_get_object_body(monkeypatch) -> None:
    """moto's aws-sdk integration returns S3 GetObject's Body as a stream; Step Functions
    returns the text (what States.StringToJson reads)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as module,
    )

    original = module.StateTaskServiceAwsSdk._eval_service_task

    def eval_service_task(self, env, *args, **kwargs):
        original(self, env, *args, **kwargs)
        result = env.stack[-1]
        if isinstance(result, dict) and hasattr(result.get("Body"), "read"):
            result["Body"] = result["Body"].read().decode("utf-8")

    monkeypatch.setattr(module.StateTaskServiceAwsSdk, "_eval_service_task", eval_service_task)


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def _moto_version() -> Tuple[int, ...]:
    from importlib import metadata

    return tuple(int(part) for part in re.findall(r"\d+", metadata.version("moto"))[:2])


# moto 5.1, the last moto for Python 3.9, deep-copies a state machine together
# with its backend's lock when a second execution starts in one backend, so the
# tests that run many executions in-process need moto 5.2 (Python 3.10+). On 3.9
# the compatibility test (tests/compat) still runs the whole local pipeline.
needs_many_executions = __import__("pytest").mark.skipif(
    _moto_version() < (5, 2), reason="moto 5.1 (Python 3.9) cannot start a second execution in one backend in-process")
