"""The report folder of a run (docs/contract.md, 9.3), and the table `wait` prints.

report.json  machine-readable: everything in the Outcome
report.md    for release managers: verdict, summary, gate, steps, package, links
junit.xml    one test case per gate rule, so Jenkins shows the gate as tests
summary.txt  one line, for the build description
outcome.txt  key=value: status, run, gate and champion values, for the Jenkins steps (no JSON in CPS Groovy)
report.html  the same with charts: step timeline, gate metrics across versions (report_html)
report.css   report.html's stylesheet (Jenkins serves archived pages with `style-src 'self'`)
"""

import json
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Sequence

from . import outcome as out
from . import owned
from .neutral import console_link, log_file_link, md, plain, visible
from .outcome import Outcome, format_duration, format_value

FILES = ("report.json", "report.md", "junit.xml", "summary.txt", "outcome.txt", "report.html", "report.css")


def write(outcome: Outcome, report_dir: Path) -> Dict[str, Path]:
    """Write the files of FILES (atomically each) and return their paths by name."""
    from . import report_html

    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    link_log_files(outcome, report_dir)
    data = json.loads(json.dumps(outcome.to_dict(), default=str))
    contents = {
        "report.json": json.dumps(data, indent=2, sort_keys=True) + "\n",
        "report.html": report_html.render(data),
        "report.css": report_html.STYLESHEET,
        "report.md": markdown(outcome),
        "junit.xml": junit(outcome),
        "summary.txt": summary(outcome) + "\n",
        "outcome.txt": key_values(outcome),
    }
    paths = {}
    for name, text in contents.items():
        path = report_dir / name
        owned.write_atomic(path, text.encode("utf-8"))  # never through a link left in the folder
        paths[name] = path
    return paths


def link_log_files(outcome: Outcome, report_dir: Path) -> None:
    """A local run keeps each job's log in the report folder (logs/<job>.log):
    the report links them, relative, so the links travel with the folder."""
    for step in outcome.steps:
        if step.job_name and not step.log_file:
            name = f"{step.job_name}.log"
            if (report_dir / "logs" / name).is_file():
                step.log_file = f"logs/{name}"


# --------------------------------------------------------------------------- summary.txt


def summary(outcome: Outcome) -> str:
    """'fraud-detection run jenkins-x-42: PASSED auc=0.962 (>= 0.9), ...; registered fraud-detection/3 (PendingManualApproval)'
    The build description shows it: no control character, no '<' that opens a tag (neutral.plain)."""
    from .costs import summary_suffix

    return plain(_summary(outcome) + summary_suffix(outcome))


def _summary(outcome: Outcome) -> str:
    head = f"{outcome.model} run {outcome.run_name}: {outcome.headline}"
    if outcome.status in (out.PASSED, out.GATE_FAILED):
        checks = ", ".join(c.describe() + ("" if c.passed is not False else " missed") for c in outcome.gate)
        text = f"{head} {checks}" if checks else head
        if outcome.status == out.PASSED:
            return f"{text}; {outcome.registration_text()}"
        return f"{text}; not registered"
    return f"{head}: {out.one_line(outcome.message)}"


# --------------------------------------------------------------------------- outcome.txt


def _number(value) -> str:
    """repr of a float ('0.941', '1e-05'); empty when there is none (missing, not a number)."""
    return repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else ""


def key_values(outcome: Outcome) -> str:
    """What the Jenkins steps return to a Jenkinsfile, as key=value lines they read
    without JSON: status, run, metric.<name>= per gate metric, and the champion's
    name and champion.<name>= values. Metric names are letters, digits, _ and -."""
    champion = outcome.champion or {}
    name = champion_heading(outcome)[len("champion "):-len(" vs this run")] if champion.get("Version") is not None else ""
    lines = [f"status={outcome.status}", f"run={' '.join(str(outcome.run_name).split())}", f"champion={name}"]
    seen = set()
    for check in outcome.gate:
        if check.metric not in seen:   # a threshold and a champion rule of one metric read one value
            seen.add(check.metric)
            lines.append(f"metric.{check.metric}={_number(check.value)}")
    for row in outcome.comparison:
        lines.append(f"champion.{row['metric']}={_number(row.get('champion'))}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- console


def _table(header: Sequence[str], rows: List[Sequence[str]]) -> List[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def gate_rows(outcome: Outcome) -> List[List[str]]:
    return [[c.metric, c.value_text, c.rule, c.verdict] for c in outcome.gate]


def _signed(value) -> str:
    return "-" if value is None else f"{value:+.4g}"


def training_metric_rows(outcome: Outcome) -> List[List[str]]:
    """metric, last value ('no value' when no line of the log matched its regex)."""
    return [[row["name"], format_value(row["value"]) if row.get("value") is not None else "no value"]
            for row in outcome.training_metrics or []]


def champion_rows(outcome: Outcome) -> List[List[str]]:
    """metric, champion, challenger, delta, better/worse/same."""
    return [[r["metric"], format_value(r["champion"]) if r["champion"] is not None else "-",
             format_value(r["challenger"]) if r["challenger"] is not None else "-", _signed(r["delta"]),
             r["verdict"]] for r in outcome.comparison]


def champion_heading(outcome: Outcome) -> str:
    """'champion fraud-detection/3 vs this run' or 'no champion: <why>'."""
    champion = outcome.champion or {}
    if champion.get("Version") is None:
        return f"no champion: {champion.get('Reason') or 'not looked up'}"
    name = str(champion.get("Arn") or "").split(":model-package/", 1)[-1] or f"v{champion['Version']}"
    return f"champion {name} vs this run"


def champion_lines(outcome: Outcome) -> List[str]:
    if outcome.champion is None:
        return []
    lines = [champion_heading(outcome)]
    if outcome.comparison:
        lines += _table(["metric", "champion", "challenger", "delta", "verdict"], champion_rows(outcome))
    return lines


def console_lines(outcome: Outcome) -> List[str]:
    """What `wait` prints at the end: the gate table, the champion, the package, the failure."""
    lines = ["", f"{outcome.model} run {outcome.run_name}: {outcome.headline}"]
    if outcome.gate:
        lines += _table(["metric", "value", "rule", "result"], gate_rows(outcome))
    if outcome.training_metrics:
        lines += ["training metrics (last value in the training log)"]
        lines += _table(["metric", "last value"], training_metric_rows(outcome))
    lines += champion_lines(outcome)
    if outcome.status == out.PASSED:
        if outcome.model_package_arn:
            approval = outcome.approval_status or "approval status unknown"
            lines.append(f"model package: {outcome.model_package_arn} ({approval})")
        else:
            lines.append(f"model package: {outcome.registration_text()}")
    failure = outcome.failure
    if failure and outcome.status != out.GATE_FAILED:
        lines.append(f"step: {failure.step or 'unknown'}" + (f" (job {failure.job_name})" if failure.job_name else ""))
        if failure.reason:
            # What the log tail below shows already is not repeated (a traceback, once).
            shown = {line.strip() for line in failure.log_tail}
            first, *rest = failure.reason.strip().splitlines() or [""]
            lines.append(f"reason: {first}")
            lines += [f"        {line}" for line in rest if line.strip() not in shown]
        if failure.log_tail:
            lines.append(f"last {len(failure.log_tail)} log lines ({failure.log_group}):")
            lines += [f"  | {line}" for line in failure.log_tail]
        elif failure.job_name:
            lines.append("no log lines found for the job")
    from .costs import console_lines as cost_lines

    lines += cost_lines(outcome)
    for warning in outcome.warnings:
        lines.append(f"warning: {warning}")
    return lines


# --------------------------------------------------------------------------- report.md


class _Safe(str):
    """Markdown made by `_link`: written into a table as it is."""


def _cell(value) -> str:
    """Untrusted text in a table cell: shown, never rendered (neutral.md)."""
    return value if isinstance(value, _Safe) else md(value)


def _md_table(header: Sequence[str], rows: List[Sequence]) -> List[str]:
    return [
        "| " + " | ".join(_cell(h) for h in header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in rows),
    ]


def _link(text: str, url) -> str:
    """A Markdown link only to an AWS console address mltp builds (neutral.console_link);
    anything else, the Jenkins build URL from the environment included, is text."""
    target = console_link(url)
    return _Safe(f"[{md(text)}]({target})" if target else md(text))


def _log_cell(step: out.StepRecord) -> str:
    """The CloudWatch stream on AWS; in a local run the job's log file beside the report."""
    if step.log_link:
        return _link("log stream", step.log_link)
    target = log_file_link(step.log_file)
    if target:
        return _Safe(f"[log file]({target})")
    return "-"


def _when(moment) -> str:
    """To the second, in UTC: '2024-05-01 09:00:00 UTC'."""
    if not moment:
        return "-"
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def markdown(outcome: Outcome) -> str:
    verdict = "PASSED" if outcome.passed else "FAILED"
    lines = [f"# {md(outcome.model, cell=False)}: {verdict}", ""]
    if not outcome.passed:
        lines += [f"**{outcome.headline}**: {md(outcome.message, cell=False)}", ""]
    summary_rows = [
        ("Model", outcome.model),
        ("State machine", outcome.state_machine),
        ("Run", outcome.run_name),
        ("Execution", _link(outcome.execution_arn, outcome.execution_link)),
        ("Status", f"{outcome.headline} (exit code {outcome.exit_code})"),
        ("Branch", outcome.branch or "(none: not a git checkout)"),
        ("Commit", outcome.commit or "-"),
        ("Build", outcome.build_url if outcome.build_url else "- (not built by Jenkins)"),
        ("Started", _when(outcome.started)),
        ("Ended", _when(outcome.ended)),
        ("Model package", _package_text(outcome)),
    ]
    lines += _md_table(["", ""], summary_rows) + [""]
    lines += ["## Gate", ""]
    lines += _md_table(["Metric", "Value", "Rule", "Result"], gate_rows(outcome)) + [""]
    notes = [c for c in outcome.gate if c.note and c.passed is not None]
    lines += [f"- {md(c.metric, cell=False)} {md(c.rule, cell=False)}: {md(c.note, cell=False)}"
              for c in notes] + ([""] if notes else [])
    if outcome.training_metrics:
        lines += ["## Training metrics", "", "The last value of each in the training job's log "
                  "(steps.training.metric_definitions).", ""]
        lines += _md_table(["Metric", "Last value"], training_metric_rows(outcome)) + [""]
    if outcome.champion is not None:
        lines += ["## Champion", "", md(champion_heading(outcome), cell=False), ""]
        if outcome.comparison:
            lines += _md_table(["Metric", "Champion", "Challenger", "Delta", "Verdict"], champion_rows(outcome)) + [""]
    lines += ["## Steps", ""]
    lines += _md_table(
        ["Step", "Job", "Status", "Duration", "Log"],
        [(s.name, _link(s.job_name, s.link) if s.job_name else "-", out.step_status_long(s),
          format_duration(s.duration_seconds) or "-", _log_cell(s))
         for s in outcome.steps],
    ) + [""]
    lines += _cost_section(outcome)
    failure = outcome.failure
    if failure and outcome.status != out.GATE_FAILED:
        lines += ["## Failure", ""]
        lines += [f"- Step: {md(failure.step or 'unknown', cell=False)}"]
        if failure.job_name:
            lines += [f"- Job: {md(failure.job_name, cell=False)}"]
        if failure.error:
            lines += [f"- Error: {md(failure.error, cell=False)}"]
        if failure.reason and "\n" in failure.reason.strip():
            lines += ["- Reason:", "", *_fenced(failure.reason.strip().splitlines(), indent="  "), ""]
        elif failure.reason:
            lines += [f"- Reason: {md(failure.reason, cell=False)}"]
        if failure.log_link:
            lines += [f"- Log: {_link(failure.log_group or 'CloudWatch', failure.log_link)}"]
        if failure.log_tail:
            lines += ["", f"Last {len(failure.log_tail)} log lines:", "", *_fenced(failure.log_tail)]
        lines += [""]
    if outcome.warnings:
        lines += ["## Warnings", ""] + [f"- {md(w, cell=False)}" for w in outcome.warnings] + [""]
    return "\n".join(lines)


def _cost_section(outcome: Outcome) -> List[str]:
    """## Cost: the run's total and one row per job (costs.py); nothing for a local run."""
    from . import costs

    if outcome.cost is None:
        return []
    data = outcome.cost.to_dict()
    lines = ["## Cost", "", f"**{md(data['text'], cell=False)}** (on-demand prices in {md(outcome.region, cell=False)})", ""]
    return lines + _md_table([h.capitalize() for h in costs.HEADER], costs.table_rows(data)) + [""]


def _fenced(lines: List[str], indent: str = "") -> List[str]:
    """A code block that no line of `lines` can close early; control characters shown as escapes."""
    lines = [visible(line) for line in lines]
    fence = "```"
    while any(fence in line for line in lines):
        fence += "`"
    return [indent + fence, *(indent + line for line in lines), indent + fence]


def _package_text(outcome: Outcome) -> str:
    if outcome.model_package_arn:
        return f"{outcome.model_package_arn} ({outcome.approval_status or 'approval status unknown'})"
    return outcome.registration_text()


# --------------------------------------------------------------------------- junit.xml


# Characters XML 1.0 cannot carry at all, even escaped (terminal colour codes in a cause, ...).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text) -> str:
    """Text for XML: control characters shown as escapes (neutral.visible), what
    XML 1.0 cannot carry dropped; the writer escapes markup."""
    return _NOT_XML.sub("", visible(text))


def junit(outcome: Outcome) -> str:
    """One test case per gate rule: <failure> when it missed, <skipped> when the
    run ended before the gate could be evaluated."""
    classname = _x(f"mltp.gate.{outcome.model}")
    failures = sum(1 for c in outcome.gate if c.passed is False)
    skipped = sum(1 for c in outcome.gate if c.passed is None)
    duration = (outcome.ended - outcome.started).total_seconds() if outcome.started and outcome.ended else 0.0
    attrs = {
        "name": classname,
        "tests": str(len(outcome.gate)),
        "failures": str(failures),
        "errors": "0",
        "skipped": str(skipped),
        "time": f"{max(0.0, duration):.3f}",
        "timestamp": (outcome.started or datetime.now(timezone.utc)).strftime("%Y-%m-%dT%H:%M:%S"),
    }
    suites = ET.Element("testsuites", {k: attrs[k] for k in ("name", "tests", "failures", "errors", "skipped", "time")})
    suite = ET.SubElement(suites, "testsuite", attrs)
    properties = ET.SubElement(suite, "properties")
    for name, value in (("run", outcome.run_name), ("state_machine", outcome.state_machine),
                        ("execution_arn", outcome.execution_arn), ("status", outcome.status),
                        ("commit", outcome.commit), ("build_url", outcome.build_url),
                        ("model_package_arn", outcome.model_package_arn or "")):
        ET.SubElement(properties, "property", {"name": name, "value": _x(value)})
    for step in outcome.steps:  # the step cache: which steps this run took from which earlier run
        if step.status == out.CACHED:
            ET.SubElement(properties, "property", {"name": f"cached.{step.name}", "value": _x(step.cached_from or "")})
            if step.cached_from_default:  # copied from the default branch's run into this branch run's folder
                ET.SubElement(properties, "property", {"name": f"cached.{step.name}.branch", "value": "default"})
    for check in outcome.gate:
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _x(f"{check.metric} {check.rule}"),
                                                 "time": "0"})
        if check.passed is False:
            failure = ET.SubElement(case, "failure", {"message": _x(check.miss_message()), "type": "MetricGateFailed"})
            failure.text = _x(f"{check.miss_message()} (run {outcome.run_name})")
        elif check.passed is None:
            ET.SubElement(case, "skipped", {"message": _x(f"not evaluated: {outcome.message}")})
        else:
            out_text = ET.SubElement(case, "system-out")
            out_text.text = _x(f"{check.metric} = {check.value_text} ({check.rule})" + (f": {check.note}" if check.note else ""))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
