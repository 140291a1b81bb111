"""Training metrics: values a training script prints, read from its log by the
regexes of `steps.training.metric_definitions` (docs/contract.md, 3.3), as
SageMaker reads them for AlgorithmSpecification.MetricDefinitions.

- On AWS the definitions go into the training job's request; SageMaker reads the
  job's log with them and keeps the last value of each in the job's
  FinalMetricDataList (DescribeTrainingJob, which the state machine's `.sync`
  training task returns).
- Locally the emulated job does the same (`last_values` over the job's log, the
  runner puts the list on the emulated job), so DescribeTrainingJob answers alike.

Everything downstream reads FinalMetricDataList, on both sides: the Gate
(a gate rule with `source: training`: the Training task's ResultSelector picks
each such metric by name, `result_selector`), the report (`from_metric_data`
over DescribeTrainingJob), and the gate table `wait` prints. No CloudWatch log
is read back: the value the Gate decided on is the one the report shows.

No heavy imports here: config validation imports this module.
"""

import math
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

TRAINING = "training"  # GateRule.source of a rule on a training metric
EVALUATION = "evaluation"
WHERE = "the training job's metrics"  # how messages name the source (gate rules, the report)

# Where the Training task's ResultSelector puts the gated metrics in the state data:
# $.jobs.training.metrics.<name> is the list [value] ([] when the log had none).
STATE_PATH = "$.jobs.training.metrics"


# --------------------------------------------------------------------------- config checks


def regex_problem(regex: str) -> Optional[str]:
    """Why a metric regex cannot be used, or None: it must compile (Python's re,
    which the local run uses) and have a group, since the value is the first group."""
    try:
        compiled = re.compile(regex)
    except (re.error, RecursionError, OverflowError) as exc:
        return f"does not compile as a regular expression ({exc})"
    if compiled.groups < 1:
        return ("has no capture group: the metric's value is the regex's first group, "
                "e.g. 'loss=([0-9.eE+-]+)'")
    return None


def problems(doc) -> List[Any]:
    """steps.training.metric_definitions and the gate rules that read them: each
    regex usable, each name once; a `source: training` rule names a definition and
    has no `path`; the rules of one metric read one source."""
    from .yaml_source import Problem, key_path

    data = doc.value if isinstance(doc.value, dict) else {}
    out: List[Problem] = []

    def add(path: Tuple[Any, ...], message: str) -> None:
        out.append(Problem(doc.line_of(path), key_path(path), message))

    steps = data.get("steps") if isinstance(data.get("steps"), dict) else {}
    training = steps.get("training") if isinstance(steps.get("training"), dict) else {}
    definitions = training.get("metric_definitions")
    base = ("steps", "training", "metric_definitions")
    names: Dict[str, int] = {}
    for index, item in enumerate(definitions if isinstance(definitions, list) else []):
        if not isinstance(item, dict):
            continue
        name, regex = item.get("name"), item.get("regex")
        if isinstance(name, str):
            if name in names:
                add(base + (index, "name"), f"metric '{name}' is defined twice (metric_definitions[{names[name]}] has it)")
            names.setdefault(name, index)
        if isinstance(regex, str) and regex:
            why = regex_problem(regex)
            if why:
                add(base + (index, "regex"), why)
    gate = data.get("gate")
    sources: Dict[str, Tuple[int, str]] = {}
    for index, rule in enumerate(gate if isinstance(gate, list) else []):
        if not isinstance(rule, dict) or not isinstance(rule.get("metric"), str):
            continue
        metric, source = rule["metric"], rule.get("source", EVALUATION)
        if source == TRAINING:
            if metric not in names:
                known = f"which defines: {', '.join(names)}" if names else "which is empty"
                add(("gate", index, "metric"), f"'{metric}' is not a metric of steps.training.metric_definitions "
                                               f"({known}); a rule with source: training reads one of those")
            if "path" in rule:
                add(("gate", index, "path"), "path reads evaluation.json: a rule with source: training has none")
        if metric in sources and sources[metric][1] != source:
            other, given = sources[metric]
            add(("gate", index, "source" if "source" in rule else "metric"),
                f"metric '{metric}' reads source {given} in gate[{other}]: the rules of one metric read one value "
                f"(give both the same source)")
        sources.setdefault(metric, (index, source))
    return out


# --------------------------------------------------------------------------- reading a log


def compiled(definitions: Iterable[Mapping[str, Any]]) -> List[Tuple[str, "re.Pattern[str]"]]:
    """(name, regex) of SageMaker-shaped definitions ({"Name", "Regex"}); one whose
    regex does not compile or has no group is left out (validation refuses those)."""
    out = []
    for item in definitions:
        name, regex = item.get("Name"), item.get("Regex")
        if isinstance(name, str) and isinstance(regex, str) and regex_problem(regex) is None:
            out.append((name, re.compile(regex)))
    return out


def number(text: Optional[str]) -> Optional[float]:
    """A captured value as a metric value: a finite number, else None (ignored)."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def last_values(definitions: Iterable[Mapping[str, Any]], lines: Iterable[str]) -> Dict[str, float]:
    """Metric name -> the value of its last match in the log, line by line; the
    value is the first group of the regex's first match on a line. A match whose
    group is not a finite number is ignored. Metrics that never matched are absent."""
    patterns = compiled(definitions)
    found: Dict[str, float] = {}
    for line in lines:
        for name, pattern in patterns:
            match = pattern.search(line)
            if match:
                value = number(match.group(1))
                if value is not None:
                    found[name] = value
    return found


def metric_data_list(values: Mapping[str, float], order: Sequence[str], when: Any) -> List[Dict[str, Any]]:
    """FinalMetricDataList as DescribeTrainingJob shows it, in definition order."""
    return [{"MetricName": name, "Value": float(values[name]), "Timestamp": when} for name in order if name in values]


def from_metric_data(items: Any) -> Dict[str, float]:
    """Metric name -> value of a FinalMetricDataList (finite numbers only)."""
    out: Dict[str, float] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("MetricName"), str):
            value = item.get("Value")
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                out[item["MetricName"]] = float(value)
    return out


def table(definitions: Sequence[Any], values: Mapping[str, float]) -> List[Dict[str, Any]]:
    """report.json's training_metrics: one row per definition, in config order,
    with its last value (None when no line of the log matched)."""
    return [{"name": d.name, "value": values.get(d.name)} for d in definitions]


# --------------------------------------------------------------------------- the state machine


def gated(rules: Iterable[Any]) -> List[str]:
    """The metrics gate rules read from training, each once, in rule order."""
    seen: List[str] = []
    for rule in rules:
        if getattr(rule, "source", EVALUATION) == TRAINING and rule.metric not in seen:
            seen.append(rule.metric)
    return seen


def selector_path(name: str) -> str:
    """The JSONPath that picks a metric's value out of DescribeTrainingJob: a list,
    [value], or [] when FinalMetricDataList lacks it or is absent. The deep scan
    (`$..`) makes the path indefinite, so an absent list is no match (an empty
    result), not an error, as for a filter that matches nothing. Gate rule metric
    names are letters, digits, '_' and '-' (config schema): no quote to escape."""
    return f"$..FinalMetricDataList[?(@.MetricName == '{name}')].Value"


def result_selector(rules: Iterable[Any]) -> Dict[str, str]:
    """The Training task's ResultSelector entries for the gated training metrics."""
    return {f"{name}.$": selector_path(name) for name in gated(rules)}


def state_values(state: Any, rules: Iterable[Any]) -> Dict[str, Any]:
    """Metric name -> value of the gated training metrics in the state data, as the
    Gate reads them ($.jobs.training.metrics.<name>[0]); absent when not there."""
    try:
        metrics = state["jobs"]["training"]["metrics"]
    except (TypeError, KeyError):
        return {}
    out: Dict[str, Any] = {}
    for name in gated(rules):
        found = metrics.get(name) if isinstance(metrics, dict) else None
        if isinstance(found, list) and found:
            out[name] = found[0]
    return out
