"""report.html: the run for people who would rather look than read numbers.

Jenkins serves archived HTML under a strict Content Security Policy
(`sandbox; default-src 'none'; img-src 'self'; style-src 'self';`), so this
page must render with none of: scripts, `style` attributes or elements,
external resources. What the policy does allow is a stylesheet of the same
origin: `report.css`, written beside report.html (and archived with it), gives
the page its layout; the charts are inline SVG drawn with presentation
attributes only (`fill`, `stroke`, `font-size`), so they look the same with or
without it. tests/helper/test_report_html.py checks that in a real browser
behind that very header: no violation, and the stylesheet applied.

It is rendered from the report data (what report.json holds), so the page can
be rebuilt from report.json alone, and a section appears only when the data has
it: the champion vs challenger table, for one, when a `comparison` is there.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .neutral import console_link, log_file_link, visible
from .outcome import HEADLINES, format_duration, format_value, step_status_text

# Colours: GitHub's palette, readable on white and for most colour-blind readers
# (the pass/fail meaning is also written out in text).
GREEN = "#1a7f37"
RED = "#cf222e"
BLUE = "#0969da"
AMBER = "#bf8700"
GREY = "#8c959f"
LIGHT = "#d0d7de"
INK = "#24292f"
FONT = "sans-serif"

CACHED = "#8250df"  # a step whose outputs came from an earlier run
STEP_COLOURS = {"succeeded": GREEN, "passed": GREEN, "failed": RED, "timed out": RED, "stopped": GREY, "running": BLUE,
                "cached": CACHED}

STYLESHEET_NAME = "report.css"

# The page's only styling. A file of its own because Jenkins' policy allows
# `style-src 'self'` (a stylesheet served beside the page) and nothing inline.
STYLESHEET = """\
:root { --ink: #24292f; --muted: #57606a; --line: #d0d7de; --soft: #f6f8fa;
        --green: #1a7f37; --red: #cf222e; --blue: #0969da; --amber: #bf8700; --cached: #8250df; }
* { box-sizing: border-box; }
body { margin: 0; background: #ffffff; color: var(--ink);
       font: 14px/1.5 -apple-system, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
main { max-width: 1040px; margin: 0 auto; padding: 0 24px 48px; }
header.status { color: #ffffff; padding: 20px 24px; }
header.status.passed { background: var(--green); }
header.status.failed { background: var(--red); }
header.status .inner { max-width: 1040px; margin: 0 auto; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
header.status h1 { margin: 0; font-size: 24px; font-weight: 600; }
header.status .headline { font-size: 20px; font-weight: 700; letter-spacing: 0.04em; }
header.status .reason { flex-basis: 100%; margin: 4px 0 0; font-size: 15px; overflow-wrap: anywhere; }
header.status .run { color: rgba(255, 255, 255, 0.85); }
#verdict { margin: 0; }
#verdict svg { display: block; }
h2 { font-size: 18px; font-weight: 600; margin: 32px 0 8px; padding-bottom: 6px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; font-weight: 600; margin: 20px 0 6px; }
h3 small { color: var(--muted); font-weight: 400; margin-left: 8px; }
p.note { color: var(--muted); margin: 4px 0 12px; }
table { border-collapse: collapse; border: 1px solid var(--line); margin: 8px 0; min-width: 50%; }
table#summary { margin-top: 20px; }
th, td { border: 1px solid var(--line); padding: 6px 12px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; }
table#summary td:first-child { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.num { font-variant-numeric: tabular-nums; text-align: right; }
.pass { color: var(--green); font-weight: 700; }
.fail { color: var(--red); font-weight: 700; }
.muted, .skip { color: var(--muted); }
.cached { color: var(--cached); font-weight: 600; }
a { color: var(--blue); text-decoration: none; }
a:hover { text-decoration: underline; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 13px;
       background: var(--soft); padding: 1px 4px; border-radius: 4px; }
svg { max-width: 100%; height: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(480px, 1fr)); gap: 8px 24px; }
ul.warnings li { color: var(--amber); }
"""


def nice_ticks(low: float, high: float, count: int = 5) -> List[float]:
    """Round-number ticks that cover [low, high]: steps of 1, 2 or 5 times a
    power of ten, about `count` of them (50, 55, 60, ... rather than 51.85, 60.92)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0, 1.0]
    if high < low:
        low, high = high, low
    if high == low:
        spread = abs(high) * 0.1 or 1.0
        low, high = low - spread, high + spread
    raw = (high - low) / max(1, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * 0.999)
    first = math.floor(low / step + 1e-9) * step
    ticks = []
    value = first
    while value < high + step * 0.5 and len(ticks) < 50:
        ticks.append(round(value, 12))
        value = first + step * len(ticks)
    if ticks[-1] < high - 1e-12:
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """A tick's text with as many decimals as the step needs, and no more."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else abs(value) or 1.0
    exponent = math.floor(math.log10(step) + 1e-9)
    quarter = round(step / 10 ** exponent, 6) == 2.5  # 0.25, 2.5: one decimal more
    decimals = max(0, -exponent + (1 if quarter else 0))
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text


def _e(value: Any) -> str:
    """Escaped for HTML, control characters shown as escapes (neutral.visible)."""
    return html.escape(visible(value), quote=True)


def _num(value: float) -> str:
    """SVG coordinates: short and locale-free."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _when(text: Optional[str]) -> str:
    """ISO text to 'YYYY-MM-DD HH:MM:SS UTC' (to the second)."""
    moment = _parse(text)
    if moment is None:
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.utcoffset() is not None and not moment.utcoffset() else "")


def _parse(text: Optional[str]) -> Optional[datetime]:
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


# --------------------------------------------------------------------------- page


def render(data: Dict[str, Any]) -> str:
    """The whole page, from report data (Outcome.to_dict()): the status first,
    then what was decided (gate, champion), what ran (steps, timeline) and
    the history of each gate metric."""
    status = data.get("status", "failed")
    headline = HEADLINES.get(status, str(status).upper())
    passed = status == "passed"
    title = f"{data.get('model', '')}: {headline}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title>",
        f'<link rel="stylesheet" href="{STYLESHEET_NAME}">',
        "</head>",
        "<body>",
        _status_header(data, headline, passed),
        "<main>",
        _summary_table(data),
        "<h2>Gate</h2>",
        _gate_table(data),
    ]
    training = data.get("training_metrics")
    if training:
        parts += ["<h2>Training metrics</h2>",
                  '<p class="note">The last value of each in the training job\'s log '
                  "(<code>steps.training.metric_definitions</code>).</p>", _training_table(training)]
    comparison = data.get("comparison")
    if comparison:
        parts += ["<h2>Champion vs challenger</h2>", _comparison_table(comparison)]
    steps = data.get("steps") or []
    parts += ["<h2>Steps</h2>", _steps_table(steps), timeline_svg(steps)]
    parts += _cost_parts(data.get("cost"))
    history = data.get("history") or {}
    gate = data.get("gate") or []
    if gate:
        group = history.get("group")
        parts.append("<h2>Gate metrics across versions</h2>")
        where = f" of model package group <code>{_e(group)}</code>" if group else ""
        parts.append(f'<p class="note">Registered versions{where}; the rule\'s bounds dashed in red, '
                     f"the champion dotted in green, this run in amber.</p>")
        if history.get("note"):
            parts.append(f'<p class="note">{_e(history["note"])}</p>')
        champion = data.get("champion") or {}
        parts.append('<div class="charts">')
        for check in gate:
            parts.append(f"<div><h3>{_e(check.get('metric'))} <small>{_e(check.get('rule'))}</small></h3>")
            parts.append(metric_chart_svg(check, history.get("versions") or [], champion=champion) + "</div>")
        parts.append("</div>")
    warnings = data.get("warnings") or []
    if warnings:
        parts += ["<h2>Warnings</h2>", '<ul class="warnings">', *(f"<li>{_e(w)}</li>" for w in warnings), "</ul>"]
    parts += ["</main>", "</body>", "</html>", ""]
    return "\n".join(parts)


def _cost_parts(cost: Optional[Dict[str, Any]]) -> List[str]:
    """The run's cost and its jobs' (costs.py); nothing for a run without one (local)."""
    if not cost:
        return []
    from . import costs

    rows = [[_e(cell) for cell in row] for row in costs.table_rows(cost)]
    return ["<h2>Cost</h2>", f'<p id="cost"><b>{_e(cost.get("text"))}</b></p>',
            _table([_e(h.capitalize()) for h in costs.HEADER], rows, table_id="costs")]


def _status_header(data: Dict[str, Any], headline: str, passed: bool) -> str:
    """The verdict at the top: a coloured band (the stylesheet's) holding the model,
    the verdict badge (SVG, so it shows its colour without the stylesheet too),
    the run, and for a failed run the reason."""
    colour = GREEN if passed else RED
    badge = (f'<svg xmlns="http://www.w3.org/2000/svg" width="150" height="36" role="img" aria-label="{_e(headline)}">'
             f'<rect x="0" y="0" width="150" height="36" rx="6" fill="{colour}" stroke="#ffffff" stroke-width="2"/>'
             f'<text x="75" y="24" text-anchor="middle" font-family="{FONT}" font-size="16" font-weight="bold" '
             f'fill="#ffffff">{_e(headline)}</text></svg>')
    lines = [f'<header class="status {"passed" if passed else "failed"}" id="status"><div class="inner">',
             f"<h1>{_e(data.get('model'))}</h1>",
             f'<p id="verdict">{badge}</p>',
             f'<span class="run">run {_e(data.get("run"))}</span>']
    if not passed and data.get("message"):
        lines.append(f'<p class="reason"><b>{_e(headline)}</b>: {_e(data.get("message"))}</p>')
    lines.append("</div></header>")
    return "\n".join(lines)


def _table(header: Sequence[str], rows: List[Sequence[str]], table_id: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    ident = f' id="{table_id}"' if table_id else ""
    out = [f"<table{ident}>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _link(text: Any, url: Optional[str]) -> str:
    """A link only to an AWS console address mltp builds (neutral.console_link)."""
    target = console_link(url)
    if target:
        return f'<a href="{_e(target)}">{_e(text)}</a>'
    return _e(text)


def _summary_table(data: Dict[str, Any]) -> str:
    package = data.get("model_package") or {}
    rows = [
        ("Run", _e(data.get("run"))),
        ("State machine", _e(data.get("state_machine"))),
        ("Execution", _link(data.get("execution_arn"), data.get("execution_link"))),
        ("Branch", _e(data.get("branch") or "-")),
        ("Commit", _e(data.get("commit") or "-")),
        ("Build", _link(data.get("build_url"), data.get("build_url")) if data.get("build_url") else "-"),
        ("Started", _e(_when(data.get("started")))),
        ("Ended", _e(_when(data.get("ended")))),
        ("Model package", _e(f"{package.get('name')} ({package.get('approval_status') or 'approval status unknown'})")
         if package else _e(data.get("registration") or "not registered")),
    ]
    return _table([], [(k, v) for k, v in rows], "summary")


def _gate_table(data: Dict[str, Any]) -> str:
    rows = []
    for check in data.get("gate") or []:
        passed = check.get("passed")
        verdict = {True: "pass", False: "FAIL", None: "not evaluated"}[passed]
        css = {True: "pass", False: "fail", None: "skip"}[passed]
        colour = {True: GREEN, False: RED, None: GREY}[passed]
        value = check.get("value")
        rows.append((_e(check.get("metric")), _e(format_value(value) if value is not None else "n/a"), _e(check.get("rule")),
                     f'<span class="{css}"><font color="{colour}"><b>{_e(verdict)}</b></font></span>'))
    return _table(["Metric", "Value", "Rule", "Result"], rows, "gate")


def _training_table(rows: List[Dict[str, Any]]) -> str:
    """report.json's training_metrics: one row per metric definition, its last value."""
    cells = []
    for row in rows:
        value = row.get("value")
        shown = _e(format_value(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else \
            '<span class="muted">no value</span>'
        cells.append((_e(row.get("name")), shown))
    return _table(["Metric", "Last value"], cells, "training-metrics")


def log_href(step: Dict[str, Any]) -> Optional[str]:
    """Where a step's log is: its CloudWatch stream on AWS, or the job's log file
    beside the report in a local run (`logs/<job>.log`, a relative link that
    travels with the archived report folder)."""
    return console_link(step.get("log_link")) or log_file_link(step.get("log_file"))


def _origin(step: Dict[str, Any]) -> str:
    """The run a cached step came from, as report.json has it: '<run>', or
    '<run> on the default branch' for a branch's copy of a default-branch run's."""
    from .outcome import DEFAULT_BRANCH_TEXT

    return f"{step['cached_from']}" + (f" {DEFAULT_BRANCH_TEXT}" if step.get("cached_from_default_branch") else "")


def _steps_table(steps: List[Dict[str, Any]]) -> str:
    rows = []
    for step in steps:
        name = step.get("name", "?")
        status = step_status_text(name, step.get("status", ""))
        css = {"failed": "fail", "timed out": "fail", "cached": "cached", "not run": "skip", "stopped": "skip"}.get(status, "")
        status_html = f'<span class="{css}">{_e(status)}</span>' if css else _e(status)
        if status == "cached" and step.get("cached_from"):
            status_html += f' <span class="muted">(from {_e(_origin(step))})</span>'
        job = step.get("job_name")
        job_html = _link(job, step.get("link")) if job else "-"
        href = log_href(step)
        log_html = f'<a href="{_e(href)}">{"log stream" if href.startswith("https://") else "log file"}</a>' if href else "-"
        rows.append((_e(name), job_html, status_html, _e(format_duration(step.get("duration_seconds")) or "-"), log_html))
    return _table(["Step", "Job", "Status", "Duration", "Log"], rows, "steps")


def _comparison_table(comparison: Dict[str, Any]) -> str:
    """`comparison`: {"champion": label, "challenger": label, "rows": [{"metric", "champion",
    "challenger", "verdict"}]}; rendered as given (the comparison itself is made elsewhere)."""
    champion = comparison.get("champion") or "champion"
    challenger = comparison.get("challenger") or "challenger"
    rows = []
    for row in comparison.get("rows") or []:
        cells = []
        for key in ("champion", "challenger"):
            value = row.get(key)
            cells.append(_e(format_value(value) if isinstance(value, (int, float)) else (value if value is not None else "-")))
        rows.append((_e(row.get("metric")), *cells, _e(row.get("verdict") or "")))
    return _table(["Metric", _e(champion), _e(challenger), "Verdict"], rows, "comparison")


# --------------------------------------------------------------------------- timeline


def timeline_svg(steps: List[Dict[str, Any]], width: int = 760) -> str:
    """One bar per step: where it started and how long it took, on the run's time axis."""
    label_w, right, row_h, top = 130, 150, 26, 8
    timed = [(s, _parse(s.get("started")), _parse(s.get("ended"))) for s in steps]
    starts = [t for _, t, _ in timed if t]
    ends = [t for _, _, t in timed if t] + starts
    height = top + row_h * max(1, len(steps)) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="timeline" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="step timeline">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff" stroke="{LIGHT}"/>']
    if not starts:
        out.append(f'<text x="12" y="24" font-family="{FONT}" font-size="13" fill="{INK}">no step ran</text></svg>')
        return "\n".join(out)
    origin = min(starts)
    total = max(1.0, (max(ends) - origin).total_seconds())
    span = width - label_w - right
    for i, (step, started, ended) in enumerate(timed):
        y = top + i * row_h
        name = step.get("name", "?")
        status = step_status_text(name, step.get("status", ""))
        out.append(f'<text x="8" y="{y + 17}" font-family="{FONT}" font-size="13" fill="{INK}">{_e(name)}</text>')
        if started is None:
            text = status or "not run"
            if status == "cached" and step.get("cached_from"):
                text += f" (from {_origin(step)})"
            out.append(f'<text x="{label_w}" y="{y + 17}" font-family="{FONT}" font-size="12" '
                       f'fill="{CACHED if status == "cached" else GREY}">{_e(text)}</text>')
            continue
        x = label_w + span * (started - origin).total_seconds() / total
        seconds = (ended - started).total_seconds() if ended else 0.0
        w = max(3.0, span * seconds / total)
        colour = STEP_COLOURS.get(status, GREY)
        out.append(f'<rect x="{_num(x)}" y="{y + 4}" width="{_num(w)}" height="{row_h - 8}" rx="2" fill="{colour}">'
                   f'<title>{_e(name)} {_e(status)} {_e(format_duration(seconds))}</title></rect>')
        out.append(f'<text x="{_num(x + w + 6)}" y="{y + 17}" font-family="{FONT}" font-size="12" fill="{INK}">'
                   f'{_e(status)} {_e(format_duration(seconds) if ended else "")}</text>')
    axis_y = top + row_h * len(steps) + 4
    out.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + span}" y2="{axis_y}" stroke="{GREY}"/>')
    for fraction in (0.0, 0.5, 1.0):
        x = label_w + span * fraction
        out.append(f'<text x="{_num(x)}" y="{axis_y + 18}" text-anchor="middle" font-family="{FONT}" font-size="11" '
                   f'fill="{GREY}">+{_e(format_duration(total * fraction) or "0s")}</text>')
    out.append("</svg>")
    return "\n".join(out)


# --------------------------------------------------------------------------- metric history


def _bounds(rule: str) -> List[Tuple[str, float]]:
    """('min', 0.9) and/or ('max', 0.05) from a rule text like '>= 0.9 and <= 0.95'."""
    found = []
    for op, kind in ((">=", "min"), ("<=", "max")):
        if op in rule:
            try:
                found.append((kind, float(rule.split(op, 1)[1].split()[0])))
            except (IndexError, ValueError):
                continue
    return found


def metric_chart_svg(check: Dict[str, Any], versions: List[Dict[str, Any]], width: int = 480, height: int = 210,
                     champion: Optional[Dict[str, Any]] = None) -> str:
    """The metric's value in each version of the group (oldest left) on a
    round-number axis, the rule's bounds as dashed lines, the champion's value
    as a dotted green line (its point ringed), and this run as a larger amber point."""
    metric = str(check.get("metric", ""))
    champion = champion or {}
    champion_version = champion.get("version")
    champion_value = (champion.get("metrics") or {}).get(metric)
    if not (isinstance(champion_value, (int, float)) and math.isfinite(champion_value)):
        champion_value = None
    points = []
    for version in versions:
        value = (version.get("metrics") or {}).get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            label = f"v{version['version']}" if version.get("version") is not None else (version.get("label") or "this run")
            is_champion = champion_version is not None and version.get("version") == champion_version
            points.append((label, float(value), bool(version.get("this_run")), is_champion))
    bounds = _bounds(str(check.get("rule", "")))
    chart_id = "chart-" + "".join(c if c.isalnum() else "-" for c in metric)
    left, right, top, bottom = 56, 96, 14, 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{_e(chart_id)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(metric)} across versions">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff" stroke="{LIGHT}"/>']
    if not points:
        out.append(f'<text x="12" y="28" font-family="{FONT}" font-size="13" fill="{INK}">'
                   f'no value of {_e(metric)} in any version yet</text></svg>')
        return "\n".join(out)
    values = [v for _, v, _, _ in points] + [b for _, b in bounds] + ([champion_value] if champion_value is not None else [])
    ticks = nice_ticks(min(values), max(values))
    low, high = ticks[0], ticks[-1]
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(value: float) -> float:
        return top + plot_h * (high - value) / (high - low)

    def x_of(index: int) -> float:
        return left + (plot_w / 2 if len(points) == 1 else plot_w * index / (len(points) - 1))

    for value in ticks:
        y = y_of(value)
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="#eaeef2"/>')
        out.append(f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" font-family="{FONT}" font-size="11" '
                   f'fill="{GREY}">{_e(tick_label(value, ticks))}</text>')
    for kind, bound in bounds:
        y = y_of(bound)
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="{RED}" '
                   f'stroke-width="2" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + plot_w + 6}" y="{_num(y + 4)}" font-family="{FONT}" font-size="11" fill="{RED}">'
                   f'{_e(kind)} {_e(format_value(bound))}</text>')
    if champion_value is not None:
        y = y_of(champion_value)
        label = f"champion v{champion_version}" if champion_version is not None else "champion"
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="{GREEN}" '
                   f'stroke-width="2" stroke-dasharray="2 3"><title>{_e(label)}: {_e(format_value(champion_value))}'
                   f'</title></line>')
        out.append(f'<text x="{left + plot_w + 6}" y="{_num(y + 16)}" font-family="{FONT}" font-size="11" '
                   f'fill="{GREEN}">{_e(label)}</text>')
    coords = [(x_of(i), y_of(v)) for i, (_, v, _, _) in enumerate(points)]
    if len(coords) > 1:
        out.append(f'<polyline points="{" ".join(f"{_num(x)},{_num(y)}" for x, y in coords)}" fill="none" '
                   f'stroke="{BLUE}" stroke-width="2"/>')
    step = max(1, math.ceil(len(points) / 12))  # at most about 12 labels on the axis
    for i, ((label, value, mine, is_champion), (x, y)) in enumerate(zip(points, coords)):
        if is_champion:
            out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="8" fill="none" stroke="{GREEN}" stroke-width="2">'
                       f'<title>champion {_e(label)}: {_e(format_value(value))}</title></circle>')
        if mine:
            out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="7" fill="{AMBER}" stroke="{INK}" stroke-width="1">'
                       f'<title>this run: {_e(format_value(value))}</title></circle>')
        else:
            out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="4" fill="{BLUE}">'
                       f'<title>{_e(label)}: {_e(format_value(value))}</title></circle>')
        if mine or i % step == 0 or i == len(points) - 1:
            out.append(f'<text x="{_num(x)}" y="{height - 12}" text-anchor="middle" font-family="{FONT}" font-size="11" '
                       f'fill="{AMBER if mine else GREY}">{_e(label)}</text>')
    out.append("</svg>")
    return "\n".join(out)
