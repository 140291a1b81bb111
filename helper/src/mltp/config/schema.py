"""config.yaml against its JSON Schema (`config_schema.SCHEMA`, the single
definition), each error said in plain words at its key's line."""

import re
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import jsonschema

from .. import redaction, yaml_source
from ..config_schema import SCHEMA
from ..yaml_source import Document, Problem, key_path
from .display import _show, _suggest


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
        "minProperties": "needs at least {v} entry(s)",
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
