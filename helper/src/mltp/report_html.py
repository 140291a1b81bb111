"""report.html: the run for people who would rather look than read numbers.

Jenkins serves archived HTML under a strict Content Security Policy
(`sandbox; default-src 'none'; img-src 'self'; style-src 'self';`), so this
page must render with none of: scripts, `style` attributes or elements,
external resources. Everything is plain HTML with presentation attributes
(`border`, `cellpadding`, `align`) and inline SVG drawn with presentation
attributes only (`fill`, `stroke`, `font-size`). tests/helper/test_report_html.py
checks that in a real browser behind that very header.

It is rendered from the report data (what report.json holds), so the page can
be rebuilt from report.json alone, and a section appears only when the data has
it: the champion vs challenger table, for one, when a `comparison` is there.
"""

from __future__ import annotations

import html
import math
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .neutral import console_link, visible
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

STEP_COLOURS = {"succeeded": GREEN, "passed": GREEN, "failed": RED, "timed out": RED, "stopped": GREY, "running": BLUE}


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
    """The whole page, from report data (Outcome.to_dict())."""
    status = data.get("status", "failed")
    headline = HEADLINES.get(status, str(status).upper())
    passed = status == "passed"
    title = f"{data.get('model', '')}: {headline}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        "</head>",
        '<body bgcolor="#ffffff" text="#24292f">',
        _verdict(data, headline, passed),
        _summary_table(data),
        "<h2>Gate</h2>",
        _gate_table(data),
    ]
    comparison = data.get("comparison")
    if comparison:
        parts += ["<h2>Champion vs challenger</h2>", _comparison_table(comparison)]
    parts += ["<h2>Steps</h2>", timeline_svg(data.get("steps") or [])]
    history = data.get("history") or {}
    gate = data.get("gate") or []
    if gate:
        group = history.get("group")
        parts.append("<h2>Gate metrics across versions</h2>")
        where = f" of model package group <code>{_e(group)}</code>" if group else ""
        parts.append(f"<p>Registered versions{where}, the rule's bounds as dashed lines, this run in amber.</p>")
        if history.get("note"):
            parts.append(f"<p>{_e(history['note'])}</p>")
        for check in gate:
            parts.append(f"<h3>{_e(check.get('metric'))} <small>{_e(check.get('rule'))}</small></h3>")
            parts.append(metric_chart_svg(check, history.get("versions") or []))
    warnings = data.get("warnings") or []
    if warnings:
        parts += ["<h2>Warnings</h2>", "<ul>", *(f"<li>{_e(w)}</li>" for w in warnings), "</ul>"]
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _verdict(data: Dict[str, Any], headline: str, passed: bool) -> str:
    colour = GREEN if passed else RED
    badge = (f'<svg xmlns="http://www.w3.org/2000/svg" width="150" height="36" role="img" aria-label="{_e(headline)}">'
             f'<rect x="0" y="0" width="150" height="36" rx="6" fill="{colour}"/>'
             f'<text x="75" y="24" text-anchor="middle" font-family="{FONT}" font-size="16" font-weight="bold" '
             f'fill="#ffffff">{_e(headline)}</text></svg>')
    lines = [f"<h1>{_e(data.get('model'))}</h1>", f'<p id="verdict">{badge}</p>']
    if not passed and data.get("message"):
        lines.append(f"<p><b>{_e(headline)}</b>: {_e(data.get('message'))}</p>")
    return "\n".join(lines)


def _table(header: Sequence[str], rows: List[Sequence[str]], table_id: str = "") -> str:
    """Cells are HTML already (escaped by the caller)."""
    ident = f' id="{table_id}"' if table_id else ""
    out = [f'<table{ident} border="1" cellpadding="6" cellspacing="0">']
    if header:
        out.append("<tr>" + "".join(f'<th align="left">{h}</th>' for h in header) + "</tr>")
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
    return _table([], [(f"<b>{k}</b>", v) for k, v in rows], "summary")


def _gate_table(data: Dict[str, Any]) -> str:
    rows = []
    for check in data.get("gate") or []:
        passed = check.get("passed")
        verdict = {True: "pass", False: "FAIL", None: "not evaluated"}[passed]
        colour = {True: GREEN, False: RED, None: GREY}[passed]
        value = check.get("value")
        rows.append((_e(check.get("metric")), _e(format_value(value) if value is not None else "n/a"), _e(check.get("rule")),
                     f'<font color="{colour}"><b>{_e(verdict)}</b></font>'))
    return _table(["Metric", "Value", "Rule", "Result"], rows, "gate")


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
            out.append(f'<text x="{label_w}" y="{y + 17}" font-family="{FONT}" font-size="12" fill="{GREY}">'
                       f'{_e(status or "not run")}</text>')
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


def metric_chart_svg(check: Dict[str, Any], versions: List[Dict[str, Any]], width: int = 560, height: int = 210) -> str:
    """The metric's value in each version of the group (oldest left), the rule's
    bounds as dashed lines, and this run as a larger amber point."""
    metric = str(check.get("metric", ""))
    points = []
    for version in versions:
        value = (version.get("metrics") or {}).get(metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            label = f"v{version['version']}" if version.get("version") is not None else (version.get("label") or "this run")
            points.append((label, float(value), bool(version.get("this_run"))))
    bounds = _bounds(str(check.get("rule", "")))
    chart_id = "chart-" + "".join(c if c.isalnum() else "-" for c in metric)
    left, right, top, bottom = 62, 70, 14, 34
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="{_e(chart_id)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="{_e(metric)} across versions">',
           f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff" stroke="{LIGHT}"/>']
    if not points:
        out.append(f'<text x="12" y="28" font-family="{FONT}" font-size="13" fill="{INK}">'
                   f'no value of {_e(metric)} in any version yet</text></svg>')
        return "\n".join(out)
    values = [v for _, v, _ in points] + [b for _, b in bounds]
    low, high = min(values), max(values)
    pad = (high - low) * 0.12 or (abs(high) * 0.05 or 0.05)
    low, high = low - pad, high + pad
    plot_w, plot_h = width - left - right, height - top - bottom

    def y_of(value: float) -> float:
        return top + plot_h * (high - value) / (high - low)

    def x_of(index: int) -> float:
        return left + (plot_w / 2 if len(points) == 1 else plot_w * index / (len(points) - 1))

    for value in (low + pad, (low + high) / 2, high - pad):
        y = y_of(value)
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="#eaeef2"/>')
        out.append(f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" font-family="{FONT}" font-size="11" '
                   f'fill="{GREY}">{_e(format_value(value))}</text>')
    for kind, bound in bounds:
        y = y_of(bound)
        out.append(f'<line x1="{left}" y1="{_num(y)}" x2="{left + plot_w}" y2="{_num(y)}" stroke="{RED}" '
                   f'stroke-width="2" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + plot_w + 6}" y="{_num(y + 4)}" font-family="{FONT}" font-size="11" fill="{RED}">'
                   f'{_e(kind)} {_e(format_value(bound))}</text>')
    coords = [(x_of(i), y_of(v)) for i, (_, v, _) in enumerate(points)]
    if len(coords) > 1:
        out.append(f'<polyline points="{" ".join(f"{_num(x)},{_num(y)}" for x, y in coords)}" fill="none" '
                   f'stroke="{BLUE}" stroke-width="2"/>')
    step = max(1, math.ceil(len(points) / 12))  # at most about 12 labels on the axis
    for i, ((label, value, mine), (x, y)) in enumerate(zip(points, coords)):
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
