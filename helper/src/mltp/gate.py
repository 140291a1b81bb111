"""The metric gate: one implementation for the state machine and for local checks.

`choice_rule` turns the config's rules into the condition of the state machine's
Gate Choice state; `evaluate` applies the same rules to a metrics mapping in
Python (the report, the local run). Both follow the same semantics:

- a rule holds when its metric is present, is a number, is ``>= min`` (when
  min is set) and ``<= max`` (when max is set); the bounds are inclusive;
- a missing metric, or one whose value is not a number, fails its rule;
- the gate passes only when every rule holds.

Where a rule's value is read from evaluation.json (docs/contract.md, 3.5), the
first that applies wins:

1. the rule's own ``path`` (dotted, like SageMaker Pipelines' JsonGet), e.g.
   ``regression_metrics.mse.value``;
2. ``metrics.<metric>.value`` (mltp's own format);
3. ``<section>.<metric>.value`` in SageMaker's model-quality sections, in this
   order: ``regression_metrics``, ``binary_classification_metrics``,
   ``multiclass_classification_metrics`` (what Model Monitor and Clarify write).

A rule with ``source: training`` reads none of these: its value is the training
job's metric of that name (steps.training.metric_definitions, training_metrics),
which the Training task's ResultSelector put at ``$.jobs.training.metrics.<name>``
as ``[value]`` (``[]`` when the job has none); `evaluate` takes those values as
``training``.

The state machine computes 2 and 3 as mltp does here: its MetricSections and
GateMetrics states merge the sections with States.JsonMerge into
``$.gate.values`` (`SECTIONS`, `merged_entries`), and the Gate and Register read
the value there, or at the rule's path under ``$.evaluation.report``.

No heavy imports here: the CLI imports this module for every verb.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

from . import training_metrics
from .config import GateRule
from .errors import RunFailed


# The sections a metric is looked up in, the first that has it winning.
SECTIONS = ("metrics", "regression_metrics", "binary_classification_metrics", "multiclass_classification_metrics")
MODEL_QUALITY_SECTIONS = SECTIONS[1:]
# Where the state machine keeps evaluation.json and the merged metric entries.
REPORT_PATH = "$.evaluation.report"
SECTIONS_PATH = REPORT_PATH  # after MetricSections, the report has every section
VALUES_PATH = "$.gate.values"


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


# The largest finite double. Step Functions reads evaluation.json with a JSON
# parser that turns `1e999` into Infinity, which IsNumeric accepts and which is
# >= any min: every rule also checks its value lies within +-MAX_FINITE, which
# Infinity, -Infinity and NaN (every comparison false) do not.
MAX_FINITE = 1.7976931348623157e308


def not_finite(value: Any) -> Optional[str]:
    """Why a numeric value is refused although JSON let it through (1e999 reads as
    Infinity), or None. The same words locally and for a run on AWS."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"{json.dumps(value)} is not a finite number"
    return None


def _fmt(number: float) -> str:
    return f"{number:g}"


def closest_first(name: str, candidates: Iterable[str], limit: int = 10) -> List[str]:
    """`candidates` ordered by how close they are to `name` (a typo, another case, a
    suffix), the closest first; at most `limit`."""
    import difflib

    def score(candidate: str) -> float:
        return difflib.SequenceMatcher(None, name.lower(), candidate.lower()).ratio()

    return sorted(candidates, key=lambda c: (-score(c), c))[:limit]


def missing_reason(metric: str, available: Iterable[str], where: str = "evaluation.json") -> str:
    """'missing from evaluation.json, which has: roc_auc, accuracy' (closest first).
    `where` names the source: evaluation.json, or the training job's metrics."""
    names = closest_first(metric, available)
    return f"missing from {where}" + (f", which has: {', '.join(names)}" if names else ", which has no metric")


def source_name(rule: GateRule) -> str:
    """Where a rule's value comes from, as messages say it."""
    return training_metrics.WHERE if rule.source == training_metrics.TRAINING else "evaluation.json"


def _check_champion(rule: GateRule, value: Any, present: bool, champion: Optional[Mapping[str, Any]]) -> RuleResult:
    """A champion rule: passes with no champion (or a champion without that
    metric), else the challenger must reach the champion's value +/- `by`."""
    text = rule.describe()
    bar = champion_bar(rule, champion)
    if bar is None:
        why = (champion or {}).get("Reason") or "the champion has no value for it"
        if (champion or {}).get("Version") is not None and rule.metric not in (champion.get("Metrics") or {}):
            why = f"champion v{champion['Version']} has no {rule.metric} recorded"
        if present and not_finite(value):
            return RuleResult(rule.metric, None, text, False, not_finite(value))
        return RuleResult(rule.metric, float(value) if present and is_number(value) else None, text, True,
                          f"no champion to beat: {why}")
    if not present:
        where = f" (path {rule.path})" if rule.path else ""
        return RuleResult(rule.metric, None, text, False, f"missing from {source_name(rule)}{where}")
    if not is_number(value):
        return RuleResult(rule.metric, None, text, False,
                          not_finite(value) or f"{json.dumps(value, default=str)} is not a number")
    number = float(value)
    version = champion.get("Version")
    ok = number >= bar if rule.better == "higher" else number <= bar
    op = (">=" if ok else "<") if rule.better == "higher" else ("<=" if ok else ">")
    return RuleResult(rule.metric, number, text, ok, f"{_fmt(number)} {op} {_fmt(bar)} (champion v{version}: "
                                                     f"{_fmt(float(champion['Metrics'][rule.metric]))})")


def champion_bar(rule: GateRule, champion: Optional[Mapping[str, Any]]) -> Optional[float]:
    """The value a champion rule's metric must reach, or None without a champion value."""
    metrics = (champion or {}).get("Metrics") or {}
    value = metrics.get(rule.metric)
    if not is_number(value):
        return None
    bar = float(value) + rule.by if rule.better == "higher" else float(value) - rule.by
    return round(bar, 12)  # 0.93 + 0.01 is 0.9400000000000001: 0.94 must reach it


def champion_bars(rules: Iterable[GateRule], champion: Optional[Mapping[str, Any]]) -> Dict[str, float]:
    """Metric -> bar for every champion rule with a champion value: what the
    state machine compares with (execution input Champion.Bars)."""
    bars = {}
    for rule in rules:
        if rule.beat_champion:
            bar = champion_bar(rule, champion)
            if bar is not None:
                bars[rule.metric] = bar
    return bars


def _check(rule: GateRule, value: Any, present: bool, available: Sequence[str] = ()) -> RuleResult:
    text = rule.describe()
    if not present and rule.path:
        return RuleResult(rule.metric, None, text, False, f"missing from evaluation.json (path {rule.path})")
    if not present:
        return RuleResult(rule.metric, None, text, False, missing_reason(rule.metric, available, source_name(rule)))
    if not is_number(value):
        return RuleResult(rule.metric, None, text, False,
                          not_finite(value) or f"{json.dumps(value, default=str)} is not a number")
    number = float(value)
    if rule.min is not None and number < rule.min:
        return RuleResult(rule.metric, number, text, False, f"{_fmt(number)} < min {_fmt(rule.min)}")
    if rule.max is not None and number > rule.max:
        return RuleResult(rule.metric, number, text, False, f"{_fmt(number)} > max {_fmt(rule.max)}")
    return RuleResult(rule.metric, number, text, True, f"{_fmt(number)} {text}")


def evaluate(rules: Iterable[GateRule], metrics: Mapping[str, Any],
             champion: Optional[Mapping[str, Any]] = None,
             training: Optional[Mapping[str, Any]] = None) -> List[RuleResult]:
    """One result per rule, in rule order. `metrics` maps a metric name to its value
    (what `parse_evaluation` returns); any value that is not a number fails its rule.
    `champion` is the execution input's Champion ({"Version", "Metrics", ...} or
    {"Reason"}), for champion rules. `training`: the training job's metrics (name ->
    value), which rules with `source: training` read instead of `metrics`."""
    rules = list(rules)
    results = []
    for rule in rules:
        if rule.source == training_metrics.TRAINING:
            source: Mapping[str, Any] = training or {}
            available = list(source)
        else:
            source = metrics
            available = [m for m in metrics if m not in _path_metrics(rules)]
        value, present = source.get(rule.metric), rule.metric in source
        if rule.beat_champion:
            results.append(_check_champion(rule, value, present, champion))
        else:
            results.append(_check(rule, value, present, available))
    return results


def training_values(rules: Iterable[GateRule], training: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The values of the metrics rules read from training (name -> value), for
    what reads one metrics mapping (gate.compare)."""
    names = training_metrics.gated(rules)
    return {name: value for name, value in (training or {}).items() if name in names}


def _path_metrics(rules: Iterable[GateRule]) -> List[str]:
    return [r.metric for r in rules if r.path]


def passed(results: Sequence[RuleResult]) -> bool:
    return all(r.passed for r in results)


# --------------------------------------------------------------------------- the ASL side

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def member_path(base: str, name: str) -> str:
    """JSONPath of member `name` under `base`. Metric names are [A-Za-z_][A-Za-z0-9_-]*
    (config schema); names with '-' use bracket notation."""
    if _PLAIN_NAME.fullmatch(name):
        return f"{base}.{name}"
    return f"{base}['{name}']"


def metric_path(metrics_path: str, metric: str) -> str:
    """JSONPath of a metric's value under `metrics_path` (e.g. '$.gate.values')."""
    return member_path(metrics_path, metric) + ".value"


def dotted_path(base: str, dotted: str) -> str:
    """JSONPath of a rule's dotted `path` ('regression_metrics.mse.value') under `base`."""
    out = base
    for name in dotted.split("."):
        out = member_path(out, name)
    return out


def path_of(metric: str, rules: Iterable[GateRule]) -> Optional[str]:
    """The dotted path the rules give a metric (config validation makes them agree), or None."""
    for rule in rules:
        if rule.metric == metric and rule.path:
            return rule.path
    return None


def value_path(metric: str, rules: Iterable[GateRule], values_path: str = VALUES_PATH,
               report_path: str = REPORT_PATH) -> str:
    """JSONPath of the value the Gate checks for `metric` (and Register records):
    a training metric's first (only) item of its list under
    training_metrics.STATE_PATH, else the rule's path under the report, else the
    metric's merged entry."""
    rules = list(rules)
    if metric in training_metrics.gated(rules):
        return member_path(training_metrics.STATE_PATH, metric) + "[0]"
    path = path_of(metric, rules)
    return dotted_path(report_path, path) if path else metric_path(values_path, metric)


SECTION_DEFAULTS = {section: {} for section in SECTIONS}  # ReadEvaluation's ResultSelector adds them


def merge_states() -> Dict[str, Dict[str, Any]]:
    """The two Pass states between ReadEvaluation and Gate (ASL, without Next).

    MetricSections: the report becomes evaluation.json over an empty object per
    section (kept by ReadEvaluation at $.evaluation.sections), so every section is
    present: States.JsonMerge needs objects, and the evaluation guard has refused
    a section that is not one. It replaces $.evaluation, so the file is held once;
    the object's ETag, which CopyEvaluation copies on (definition.py), is kept.
    GateMetrics: the sections merged into one object at $.gate.values, the earlier
    section of `SECTIONS` winning (a shallow merge: an entry is taken whole).
    """
    merged = f"{SECTIONS_PATH}.{SECTIONS[-1]}"
    for section in reversed(SECTIONS[:-1]):
        merged = f"States.JsonMerge({merged}, {SECTIONS_PATH}.{section}, false)"
    return {
        "MetricSections": {
            "Type": "Pass",
            "Comment": "evaluation.json with each metric section present (an empty object when absent)",
            "Parameters": {"report.$": "States.JsonMerge($.evaluation.sections, $.evaluation.report, false)",
                           "ETag.$": "$.evaluation.ETag"},
            "ResultPath": "$.evaluation",
        },
        "GateMetrics": {
            "Type": "Pass",
            "Comment": "One entry per metric, the first section that has it winning: " + ", ".join(SECTIONS),
            "Parameters": {"values.$": merged},
            "ResultPath": "$.gate",
        },
    }


def merged_entries(report: Mapping[str, Any]) -> Dict[str, Any]:
    """Metric name -> entry, as the GateMetrics state computes it from evaluation.json
    (a parsed object whose sections are objects: the evaluation guard sees to it)."""
    sections: Dict[str, Any] = dict(SECTION_DEFAULTS)
    sections.update(report)
    entries: Dict[str, Any] = {}
    for section in reversed(SECTIONS):
        part = sections[section]
        if isinstance(part, dict):
            entries.update(part)
    return entries


def at_path(report: Any, dotted: str):
    """(present, value) of a rule's dotted path in evaluation.json, as IsPresent sees it."""
    value = report
    for name in dotted.split("."):
        if not isinstance(value, dict) or name not in value:
            return False, None
        value = value[name]
    return True, value


# Where the helper puts the champion's bars in the execution input (and so in the
# state data, which starts as the input and keeps it: every result has its own path).
CHAMPION_BARS_PATH = "$.Champion.Bars"


def choice_rule(rules: Iterable[GateRule], metrics_path: str = VALUES_PATH,
                report_path: str = REPORT_PATH) -> Dict[str, Any]:
    """The ASL condition (a Choice rule without `Next`) that holds when every rule holds.

    ``{"And": [{"And": [IsPresent, IsNumeric, finite, >= min, <= max]}, ...]}``, one
    inner And per rule. Step Functions evaluates And left to right and stops at the
    first false operand, so a missing metric stops at IsPresent (false) instead of
    making the comparison raise States.Runtime: a missing metric fails the gate.
    "finite" is ``>= -MAX_FINITE`` and ``<= MAX_FINITE``: Infinity (`1e999` in
    evaluation.json) and NaN fail it, as `evaluate` fails them. A champion rule
    with no champion to beat holds, unless its value is a non-finite number.
    """
    per_rule = []
    rules = list(rules)
    for rule in rules:
        path = value_path(rule.metric, rules, metrics_path, report_path)
        finite = [{"Variable": path, "NumericGreaterThanEquals": -MAX_FINITE},
                  {"Variable": path, "NumericLessThanEquals": MAX_FINITE}]
        conditions: List[Dict[str, Any]] = [
            {"Variable": path, "IsPresent": True},
            {"Variable": path, "IsNumeric": True},
        ] + finite
        if rule.beat_champion:
            # No bar in the input (no champion, or one without this metric): the rule holds,
            # unless the value is a number that is not finite.
            bar = member_path(CHAMPION_BARS_PATH, rule.metric)
            compare = "NumericGreaterThanEqualsPath" if rule.better == "higher" else "NumericLessThanEqualsPath"
            conditions.append({"Variable": path, compare: bar})
            absent_or_finite = {"Or": [{"Not": {"Variable": path, "IsPresent": True}},
                                       {"Not": {"Variable": path, "IsNumeric": True}},
                                       {"And": finite}]}
            per_rule.append({"Or": [{"And": [{"Not": {"Variable": bar, "IsPresent": True}}, absent_or_finite]},
                                    {"And": conditions}]})
            continue
        if rule.min is not None:
            conditions.append({"Variable": path, "NumericGreaterThanEquals": rule.min})
        if rule.max is not None:
            conditions.append({"Variable": path, "NumericLessThanEquals": rule.max})
        if len(conditions) == 4:
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
_SECTION_NAMES = ", ".join(f'"{name}"' for name in SECTIONS)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON (write a number, or leave the metric out)")


def read_evaluation(body: Any, source: str, limit: Optional[int] = None) -> str:
    """The text of an evaluation.json from a stream (an S3 object's Body): at most
    `limit` bytes (evaluation_guard.READ_LIMIT, 1 MiB) are read, and UTF-8 is
    required, as the evaluation job's guard requires; else EvaluationError."""
    from . import evaluation_guard

    limit = evaluation_guard.READ_LIMIT if limit is None else limit
    text, why = evaluation_guard.decode(body.read(limit + 1), limit)
    if why:
        raise EvaluationError(f"{source}: {why}")
    return text


def _load(text: str, source: str) -> Dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise EvaluationError(f"{source}: not valid JSON (nested too deeply to read); expected e.g. {_EXAMPLE}") from None
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise EvaluationError(f"{source}: not valid JSON ({exc}); expected e.g. {_EXAMPLE}") from None
    if not isinstance(data, dict):
        raise EvaluationError(f"{source}: must be a JSON object like {_EXAMPLE}, not a {type(data).__name__}")
    return data


def parse_evaluation(text: str, source: str = "evaluation.json") -> Dict[str, float]:
    """Metric name -> value from evaluation.json text (the sections merged as the
    Gate merges them); raises EvaluationError naming what is wrong. Entries
    without a "value" (SageMaker's confusion_matrix and curves) are skipped: the
    gate only uses single values."""
    data = _load(text, source)
    present = [name for name in SECTIONS if name in data]
    if not present:
        raise EvaluationError(f"{source}: has none of {_SECTION_NAMES}; expected e.g. {_EXAMPLE}")
    problems = []
    for name in present:
        if not isinstance(data[name], dict):
            problems.append(f"\"{name}\" must be an object like {_EXAMPLE}")
            continue
        for metric, entry in data[name].items():
            if not isinstance(entry, dict):
                problems.append(f"{name}.{metric} must be an object like {{\"value\": 0.94}}, not {json.dumps(entry)}")
            elif "value" in entry and not is_number(entry["value"]):
                problems.append(f"{name}.{metric}.value must be a number, not {json.dumps(entry['value'])}")
    if problems:
        if len(problems) == 1 and problems[0].startswith('"'):
            raise EvaluationError(f"{source}: {problems[0]}")
        raise EvaluationError(f"{source}: {len(problems)} malformed metric{'s' if len(problems) != 1 else ''}", problems)
    return {name: float(entry["value"]) for name, entry in merged_entries(data).items()
            if isinstance(entry, dict) and "value" in entry}


def metric_values(text: str, source: str = "evaluation.json", rules: Iterable[GateRule] = ()) -> Dict[str, Any]:
    """Metric name -> raw value, read the way the state machine's Gate reads the
    file: the sections merged (`merged_entries`), an entry without a "value" absent,
    a rule's own path read where it points; a value that is not a number is kept as
    it is, so `evaluate` fails its rule naming it (exit 3, as on AWS). Raises
    EvaluationError only for what the state machine cannot read at all."""
    return report_values(_load(text, source), rules)


def report_values(data: Mapping[str, Any], rules: Iterable[GateRule] = ()) -> Dict[str, Any]:
    """`metric_values` of a parsed evaluation.json (the state data's $.evaluation.report)."""
    values = {name: entry["value"] for name, entry in merged_entries(data).items()
              if isinstance(entry, dict) and "value" in entry}
    for rule in rules:
        if rule.source == training_metrics.TRAINING:
            values.pop(rule.metric, None)  # read from the training job (evaluate's `training`)
        elif rule.path:
            present, value = at_path(data, rule.path)
            values.pop(rule.metric, None)
            if present:
                values[rule.metric] = value
    return values


# --------------------------------------------------------------------------- champion vs challenger


def better_direction(rules: Sequence[GateRule], metric: str) -> str:
    """'higher' or 'lower': the metric's champion rule says; else a threshold rule
    with max only (an error rate) means lower; else higher."""
    for rule in rules:
        if rule.metric == metric and rule.beat_champion:
            return rule.better
    for rule in rules:
        if rule.metric == metric and rule.max is not None and rule.min is None:
            return "lower"
    return "higher"


def compare(rules: Sequence[GateRule], metrics: Mapping[str, Any],
            champion: Optional[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Per gate metric (each once): champion and challenger values, the delta
    (challenger - champion) and whether the challenger is better, worse or the same.
    Empty without a champion."""
    if not champion or champion.get("Version") is None:
        return []
    known = champion.get("Metrics") or {}
    rows = []
    seen: List[str] = []
    for rule in rules:
        if rule.metric in seen:
            continue
        seen.append(rule.metric)
        theirs, ours = known.get(rule.metric), metrics.get(rule.metric)
        row: Dict[str, Any] = {"metric": rule.metric, "champion": theirs if is_number(theirs) else None,
                               "challenger": ours if is_number(ours) else None, "delta": None, "verdict": "n/a",
                               "better": better_direction(rules, rule.metric)}
        if row["champion"] is not None and row["challenger"] is not None:
            delta = float(row["challenger"]) - float(row["champion"])
            row["delta"] = delta
            if abs(delta) < 1e-12:
                row["verdict"] = "same"
            else:
                row["verdict"] = "better" if (delta > 0) == (row["better"] == "higher") else "worse"
        rows.append(row)
    return rows
