"""The metric gate: one implementation for the state machine and for local checks.

`choice_rule` turns the config's rules into the condition of the state machine's
Gate Choice state; `evaluate` applies the same rules to a metrics mapping in
Python (the report, the local run). Both follow the same semantics:

- a rule holds when its metric is present, is a number, is ``>= min`` (when
  min is set) and ``<= max`` (when max is set); the bounds are inclusive;
- a missing metric, or one whose value is not a number, fails its rule;
- the gate passes only when every rule holds.

evaluation.json follows SageMaker's model-quality convention (docs/contract.md, 3.5):
``{"metrics": {"auc": {"value": 0.941}, ...}}``; `parse_evaluation` reads it.

No heavy imports here: the CLI imports this module for every verb.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from .config import GateRule
from .errors import RunFailed


class EvaluationError(RunFailed):
    """evaluation.json is not what the contract asks for (the evaluation step failed: exit 4)."""


@dataclass(frozen=True)
class RuleResult:
    metric: str
    value: Optional[float]  # None when the metric is missing or not a number
    rule: str  # ">= 0.9", "<= 0.05" or ">= 0.1 and <= 0.9"
    passed: bool
    reason: str  # one line for people: "0.941 >= 0.9", "missing from evaluation.json", ...

    def describe(self) -> str:
        """'auc >= 0.9: passed (0.941 >= 0.9)'."""
        return f"{self.metric} {self.rule}: {'passed' if self.passed else 'FAILED'} ({self.reason})"


def is_number(value: Any) -> bool:
    """A JSON number as Step Functions' IsNumeric sees it: not a boolean, finite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(number: float) -> str:
    return f"{number:g}"


def closest_first(name: str, candidates: Iterable[str], limit: int = 10) -> List[str]:
    """`candidates` ordered by how close they are to `name` (a typo, another case, a
    suffix), the closest first; at most `limit`."""
    import difflib

    def score(candidate: str) -> float:
        return difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio()

    return sorted(candidates, key=lambda c: (-score(c), c))[:limit]


def missing_reason(metric: str, available: Iterable[str]) -> str:
    """'missing from evaluation.json, which has: roc_auc, accuracy' (closest first)."""
    names = closest_first(metric, available)
    return "missing from evaluation.json" + (f", which has: {', '.join(names)}" if names else ", which has no metric")


def _check(rule: GateRule, value: Any, present: bool, available: Sequence[str] = ()) -> RuleResult:
    text = rule.describe()
    if not present:
        return RuleResult(rule.metric, None, text, False, missing_reason(rule.metric, available))
    if not is_number(value):
        return RuleResult(rule.metric, None, text, False, f"{json.dumps(value, default=str)} is not a number")
    number = float(value)
    if rule.min is not None and number < rule.min:
        return RuleResult(rule.metric, number, text, False, f"{_fmt(number)} < min {_fmt(rule.min)}")
    if rule.max is not None and number > rule.max:
        return RuleResult(rule.metric, number, text, False, f"{_fmt(number)} > max {_fmt(rule.max)}")
    return RuleResult(rule.metric, number, text, True, f"{_fmt(number)} {text}")


def evaluate(rules: Iterable[GateRule], metrics: Mapping[str, Any]) -> List[RuleResult]:
    """One result per rule, in rule order. `metrics` maps a metric name to its value
    (what `parse_evaluation` returns); any value that is not a number fails its rule."""
    return [_check(rule, metrics.get(rule.metric), rule.metric in metrics, list(metrics)) for rule in rules]


def passed(results: Sequence[RuleResult]) -> bool:
    return all(r.passed for r in results)


# --------------------------------------------------------------------------- the ASL side

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def metric_path(metrics_path: str, metric: str) -> str:
    """JSONPath of a metric's value under `metrics_path` (e.g. '$.evaluation.report.metrics').
    Metric names are [A-Za-z_][A-Za-z0-9_-]* (config schema); names with '-' use bracket notation."""
    if _PLAIN_NAME.fullmatch(metric):
        return f"{metrics_path}.{metric}.value"
    return f"{metrics_path}['{metric}'].value"


def choice_rule(rules: Iterable[GateRule], metrics_path: str) -> Dict[str, Any]:
    """The ASL condition (a Choice rule without `Next`) that holds when every rule holds.

    ``{"And": [{"And": [IsPresent, IsNumeric, >= min, <= max]}, ...]}``, one inner
    And per rule. Step Functions evaluates And left to right and stops at the first
    false operand, so a missing metric stops at IsPresent (false) instead of making
    the comparison raise States.Runtime: a missing metric fails the gate.
    """
    per_rule = []
    for rule in rules:
        path = metric_path(metrics_path, rule.metric)
        conditions: List[Dict[str, Any]] = [
            {"Variable": path, "IsPresent": True},
            {"Variable": path, "IsNumeric": True},
        ]
        if rule.min is not None:
            conditions.append({"Variable": path, "NumericGreaterThanEquals": rule.min})
        if rule.max is not None:
            conditions.append({"Variable": path, "NumericLessThanEquals": rule.max})
        if len(conditions) == 2:
            raise ValueError(f"gate rule for {rule.metric} has neither min nor max")
        per_rule.append({"And": conditions})
    if not per_rule:
        raise ValueError("the gate needs at least one rule")
    return {"And": per_rule}


def describe_rules(rules: Iterable[GateRule]) -> str:
    """'auc >= 0.9, false_positive_rate <= 0.05'."""
    return ", ".join(f"{r.metric} {r.describe()}" for r in rules)


# --------------------------------------------------------------------------- evaluation.json


_EXAMPLE = '{"metrics": {"auc": {"value": 0.94}}}'


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (write a number, or leave the metric out)")


def parse_evaluation(text: str, source: str = "evaluation.json") -> Dict[str, float]:
    """Metric name -> value from evaluation.json text; raises EvaluationError naming
    what is wrong. Entries without a "value" (SageMaker's confusion_matrix and
    curves) are skipped: the gate only uses single values."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise EvaluationError(f"{source}: not valid JSON ({exc}); expected e.g. {_EXAMPLE}") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{source}: must be a JSON object like {_EXAMPLE}, not a {type(data).__name__}")
    metrics = data.get("metrics")
    if "metrics" not in data:
        raise EvaluationError(f"{source}: has no \"metrics\" object; expected e.g. {_EXAMPLE}")
    if not isinstance(metrics, dict):
        raise EvaluationError(f"{source}: \"metrics\" must be an object like {_EXAMPLE}")
    values: Dict[str, float] = {}
    problems = []
    for name, entry in metrics.items():
        if not isinstance(entry, dict):
            problems.append(f"metrics.{name} must be an object like {{\"value\": 0.94}}, not {json.dumps(entry)}")
            continue
        if "value" not in entry:
            continue
        value = entry["value"]
        if not is_number(value):
            problems.append(f"metrics.{name}.value must be a number, not {json.dumps(value)}")
            continue
        values[name] = float(value)
    if problems:
        raise EvaluationError(f"{source}: {len(problems)} malformed metric{'s' if len(problems) != 1 else ''}", problems)
    return values


def metric_values(text: str, source: str = "evaluation.json") -> Dict[str, Any]:
    """Metric name -> raw value, read the way the state machine's Gate reads the
    file: an entry without a "value" is absent, and a value that is not a number
    is kept as it is, so `evaluate` fails its rule naming it (exit 3, as on AWS).
    Raises EvaluationError only for what the state machine cannot read at all."""
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        raise EvaluationError(f"{source}: not valid JSON ({exc}); expected e.g. {_EXAMPLE}") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{source}: must be a JSON object like {_EXAMPLE}, not a {type(data).__name__}")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {name: entry["value"] for name, entry in metrics.items() if isinstance(entry, dict) and "value" in entry}
