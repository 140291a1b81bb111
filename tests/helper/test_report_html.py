"""report.html: what it shows, that it is CSP-safe, and that it renders in a real
browser behind Jenkins' Content Security Policy for archived artifacts.

The browser tests run Debian's chromium headless (installed by `make chromium`)
and read what it drew: a screenshot of each chart's box must have pixels that
are not background (the amber point of this run among them), and the browser
must report no CSP violation. Two controls prove the checks can fail: a page
that breaks the policy is reported, a blank box is seen as blank.
"""

import json
import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from html.parser import HTMLParser

import boto3
import pytest

from browser import Browser, CspServer, chromium_or_reason
from mltp import history, report, report_html
from mltp import outcome as out
from test_report import T0, gate_failed, make, step_failed

AMBER = (0xBF, 0x87, 0x00)
RED = (0xCF, 0x22, 0x2E)


def versions(*values):
    """Registered versions, oldest first, as history.collect returns them."""
    return [{"version": i + 1, "arn": f"arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/fraud-detection/{i + 1}",
             "created": (T0 - timedelta(days=len(values) - i)).isoformat(), "run": f"run-{i + 1}",
             "metrics": {"auc": auc, "false_positive_rate": fpr}, "this_run": False}
            for i, (auc, fpr) in enumerate(values)]


def with_history(outcome, this_run_registered=True):
    points = versions((0.91, 0.02), (0.93, 0.012), (0.95, 0.004))
    if this_run_registered:
        points.append({"version": 4, "arn": outcome.model_package_arn, "created": T0.isoformat(), "run": outcome.run_name,
                       "metrics": {c.metric: c.value for c in outcome.gate}, "this_run": True})
    else:
        points.append({"version": None, "label": "this run", "metrics": {c.metric: c.value for c in outcome.gate if c.value is not None},
                       "this_run": True})
    outcome.history = {"group": "fraud-detection", "versions": points, "note": ""}
    return outcome


# --------------------------------------------------------------------------- the page, statically


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs, self.ids = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for name, value in attrs:
            self.attrs.append((tag, name, value))
            if name == "id":
                self.ids.append(value)


def parsed(page: str) -> _Collect:
    collector = _Collect()
    collector.feed(page)
    return collector


@pytest.mark.parametrize("make_outcome", [lambda: with_history(make()), lambda: with_history(gate_failed(), False), step_failed])
def test_the_page_uses_nothing_the_csp_forbids(make_outcome):
    page = report_html.render(json.loads(json.dumps(make_outcome().to_dict(), default=str)))
    found = parsed(page)
    assert "script" not in found.tags and "style" not in found.tags
    assert "img" not in found.tags and "iframe" not in found.tags and "object" not in found.tags
    assert not [a for a in found.attrs if a[1] == "style" or a[1].startswith("on")]
    # one stylesheet, the file beside the page (the policy's style-src 'self'); nothing else is loaded
    links = [{name: value for tag, name, value in found.attrs if tag == "link" and name in ("rel", "href")}]
    assert found.tags.count("link") == 1 and links == [{"rel": "stylesheet", "href": "report.css"}]
    loads = [a for a in found.attrs if a[1] in ("src", "xlink:href") or (a[1] == "href" and a[0] not in ("a", "link"))]
    assert not loads
    for tag, name, value in found.attrs:
        if tag == "a" and name == "href":  # a web address, or a log file inside the report folder
            assert value.startswith("https://") or (value.startswith("logs/") and ".." not in value), value
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # well-formed SVG, so the browser draws all of it


def test_the_page_shows_verdict_gate_timeline_and_a_chart_per_gate_metric():
    outcome = with_history(gate_failed(), this_run_registered=False)
    page = report_html.render(json.loads(json.dumps(outcome.to_dict(), default=str)))
    found = parsed(page)
    assert {"verdict", "summary", "gate", "timeline", "chart-auc", "chart-false-positive-rate", "chart-recall"} <= set(found.ids)
    assert "GATE FAILED" in page and "auc = 0.85, needs &gt;= 0.9" in page
    auc = re.search(r'<svg[^>]*id="chart-auc".*?</svg>', page, flags=re.S).group(0)
    assert auc.count("<circle") == 4 and ">v1<" in auc and ">this run<" in auc
    assert 'stroke-dasharray="6 4"' in auc and ">min 0.9<" in auc  # the threshold
    assert "no value of recall in any version yet" in page  # recall was missing everywhere
    timeline = re.search(r'<svg[^>]*id="timeline".*?</svg>', page, flags=re.S).group(0)
    assert timeline.count("<rect") == 1 + 3  # the frame and one bar per step
    assert "comparison" not in found.ids  # nothing compared: no section


def test_a_comparison_in_the_data_gets_its_table():
    data = json.loads(json.dumps(make().to_dict(), default=str))
    data["comparison"] = {"champion": "fraud-detection/2", "challenger": "this run",
                          "rows": [{"metric": "auc", "champion": 0.95, "challenger": 0.962, "verdict": "better"}]}
    page = report_html.render(data)
    assert "Champion vs challenger" in page and "fraud-detection/2" in page and "0.962" in page
    assert "comparison" in parsed(page).ids


def test_write_puts_report_html_beside_report_md(tmp_path):
    paths = report.write(with_history(make()), tmp_path)
    assert paths["report.html"].read_text().startswith("<!DOCTYPE html>")
    assert paths["report.css"].read_text() == report_html.STYLESHEET and "header.status.passed" in report_html.STYLESHEET
    data = json.loads(paths["report.json"].read_text())
    assert [v["version"] for v in data["history"]["versions"]] == [1, 2, 3, 4]


@pytest.mark.parametrize("low, high, ticks", [
    (51.85, 70, [50, 55, 60, 65, 70]),
    (0.9, 0.96, [0.9, 0.92, 0.94, 0.96]),
    (0.004, 0.02, [0, 0.005, 0.01, 0.015, 0.02]),
    (-3, 12, [-5, 0, 5, 10, 15]),
    (1200, 98000, [0, 25000, 50000, 75000, 100000]),
])
def test_axis_ticks_are_round_numbers_that_cover_the_values(low, high, ticks):
    found = report_html.nice_ticks(low, high)
    assert found == pytest.approx(ticks)
    assert found[0] <= low and found[-1] >= high


def test_chart_axis_labels_are_round_not_raw_values():
    """The issue's example: values 51.85 .. 70 were labelled 51.85, 60.92, 70."""
    check = {"metric": "score", "rule": ">= 55"}
    points = [{"version": i + 1, "metrics": {"score": v}, "this_run": i == 2} for i, v in enumerate((51.85, 63.1, 70.0))]
    svg = report_html.metric_chart_svg(check, points)
    labels = re.findall(r'text-anchor="end"[^>]*>([^<]+)<', svg)
    assert labels == ["50", "55", "60", "65", "70"]
    assert "51.85" not in labels and "60.92" not in labels


def test_the_champion_is_drawn_on_each_metric_chart():
    outcome = with_history(make())
    data = json.loads(json.dumps(outcome.to_dict(), default=str))
    data["champion"] = {"version": 2, "arn": "arn:x", "reason": None, "metrics": {"auc": 0.93}}
    page = report_html.render(data)
    auc = re.search(r'<svg[^>]*id="chart-auc".*?</svg>', page, flags=re.S).group(0)
    assert ">champion v2<" in auc and 'stroke-dasharray="2 3"' in auc
    assert "<title>champion v2: 0.93</title>" in auc  # v2's point ringed
    no_champion = report_html.render(json.loads(json.dumps(outcome.to_dict(), default=str)))
    assert "champion v" not in no_champion


def test_the_steps_table_links_each_log_and_marks_cached_steps():
    data = json.loads(json.dumps(make().to_dict(), default=str))
    data["steps"][0].update(log_link=None, log_file="logs/job-pre.log")
    data["steps"][1].update(log_link="https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home#logsV2:x")
    data["steps"][2].update(status="cached", cached_from="run-7", started=None, ended=None, duration_seconds=None)
    page = report_html.render(data)
    table = re.search(r'<table id="steps">.*?</table>', page, flags=re.S).group(0)
    assert '<a href="logs/job-pre.log">log file</a>' in table
    assert '<a href="https://ap-northeast-2.console.aws.amazon.com/cloudwatch/home#logsV2:x">log stream</a>' in table
    assert '<span class="cached">cached</span> <span class="muted">(from run-7)</span>' in table
    timeline = re.search(r'<svg[^>]*id="timeline".*?</svg>', page, flags=re.S).group(0)
    assert f'fill="{report_html.CACHED}">cached (from run-7)<' in timeline


def test_a_local_run_s_report_links_the_job_logs_beside_it(tmp_path):
    outcome = make()
    job = next(s.job_name for s in outcome.steps if s.job_name)
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / f"{job}.log").write_text("hello\n")
    for step in outcome.steps:
        step.log_link = None
    paths = report.write(outcome, tmp_path)
    md = paths["report.md"].read_text()
    assert f"[log file](logs/{job}.log)" in md
    assert f'<a href="logs/{job}.log">log file</a>' in paths["report.html"].read_text()
    assert json.loads(paths["report.json"].read_text())["steps"][0]["log_file"] == f"logs/{job}.log"


# --------------------------------------------------------------------------- history from the registry


def test_history_reads_each_version_s_evaluation_json_from_the_registry(aws_env):
    region = "ap-northeast-2"
    sm = boto3.client("sagemaker", region_name=region, endpoint_url=aws_env)
    s3 = boto3.client("s3", region_name=region, endpoint_url=aws_env)
    bucket, group = "history-test-bucket", "history-test-group"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    sm.create_model_package_group(ModelPackageGroupName=group)
    arns = []
    for i, auc in enumerate((0.91, 0.93, 0.95)):
        key = f"runs/r{i}/evaluation.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"metrics": {"auc": {"value": auc}}}).encode())
        arns.append(sm.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}}},
            CustomerMetadataProperties={"RunName": f"r{i}"},
        )["ModelPackageArn"])
    from mltp.aws import Clients

    registered = make(model_package_arn=arns[-1])
    found = history.collect(group, Clients(region, aws_env), registered)
    assert [v["metrics"].get("auc") for v in found["versions"]] == [0.91, 0.93, 0.95]
    assert [v["this_run"] for v in found["versions"]] == [False, False, True]
    assert [v["run"] for v in found["versions"]] == ["r0", "r1", "r2"]

    branch_run = make(model_package_arn=None, register=False)
    found = history.collect(group, Clients(region, aws_env), branch_run)
    assert found["versions"][-1]["label"] == "this run" and found["versions"][-1]["metrics"]["auc"] == 0.962
    assert [v["this_run"] for v in found["versions"]] == [False, False, False, True]

    nothing = history.collect("no-such-group", Clients(region, aws_env), branch_run)
    assert [v["label"] for v in nothing["versions"]] == ["this run"] and not nothing["note"]


def test_history_reads_each_metric_where_the_gate_does(aws_env):
    """An evaluation.json keeping its metrics at the top level (no section), read by
    rules with a `path`, showed "no value of roc_auc in any version": the history
    read the sections only. It now reads what the gate reads: the rule's path, and
    a training metric (source: training) from the value recorded at registration."""
    from mltp.aws import Clients
    from mltp.config import GateRule

    region = "ap-northeast-2"
    sm = boto3.client("sagemaker", region_name=region, endpoint_url=aws_env)
    s3 = boto3.client("s3", region_name=region, endpoint_url=aws_env)
    bucket, group = "history-path-bucket", "history-path-group"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    sm.create_model_package_group(ModelPackageGroupName=group)
    arns = []
    for i, (auc, accuracy, loss) in enumerate(((0.81, 0.77, 0.4), (0.84, 0.79, 0.3))):
        key = f"runs/r{i}/evaluation.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"roc_auc": auc, "accuracy": {"value": accuracy}}).encode())
        arns.append(sm.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}}},
            CustomerMetadataProperties={"RunName": f"r{i}", "metric:train_loss": str(loss)},
        )["ModelPackageArn"])
    rules = (GateRule("roc_auc", min=0.8, path="roc_auc"), GateRule("accuracy", min=0.7, path="accuracy.value"),
             GateRule("train_loss", max=0.5, source="training"))
    outcome = make(model_package_arn=arns[-1],
                   gate=[out.GateCheck("roc_auc", ">= 0.8", 0.84, True), out.GateCheck("accuracy", ">= 0.7", 0.79, True),
                         out.GateCheck("train_loss", "<= 0.5", 0.3, True)])
    found = history.collect(group, Clients(region, aws_env), outcome, rules=rules)
    assert [v["metrics"] for v in found["versions"]] == [
        {"roc_auc": 0.81, "accuracy": 0.77, "train_loss": 0.4}, {"roc_auc": 0.84, "accuracy": 0.79, "train_loss": 0.3}]
    assert not found["note"]
    outcome.history = found
    page = report_html.render(json.loads(json.dumps(outcome.to_dict())))
    assert "no value of" not in page
    # Without the rules (as before), such a file is no evaluation.json at all: skipped with a note.
    assert "has none of" in history.collect(group, Clients(region, aws_env), outcome)["note"]


def test_one_unreadable_registered_evaluation_json_never_costs_the_report(aws_env):
    """Earlier versions whose evaluation.json is not UTF-8, nested 100,000 deep,
    over 1 MiB or not JSON are skipped with a note naming each; the others are
    read. Before, the first two ended `wait` in a traceback after registering."""
    region = "ap-northeast-2"
    sm = boto3.client("sagemaker", region_name=region, endpoint_url=aws_env)
    s3 = boto3.client("s3", region_name=region, endpoint_url=aws_env)
    bucket, group = "history-hostile-bucket", "history-hostile-group"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    sm.create_model_package_group(ModelPackageGroupName=group)
    bodies = [
        json.dumps({"metrics": {"auc": {"value": 0.91}}}).encode(),
        b'{"metrics": {"auc": {"value": 0.9}}, "note": "' + bytes([0xFF, 0xFE]) + b'"}',
        b'{"metrics": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        json.dumps({"metrics": {"auc": {"value": 0.92}}, "pad": "x" * (1024 * 1024)}).encode(),
        b"{'metrics': oops",
        json.dumps({"metrics": {"auc": {"value": 0.95}}}).encode(),
    ]
    arns = []
    for i, body in enumerate(bodies):
        key = f"runs/r{i}/evaluation.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        arns.append(sm.create_model_package(
            ModelPackageGroupName=group, ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={"Containers": [{"Image": "123456789012.dkr.ecr.ap-northeast-2.amazonaws.com/x:1"}],
                                    "SupportedContentTypes": ["text/csv"], "SupportedResponseMIMETypes": ["text/csv"]},
            ModelMetrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": f"s3://{bucket}/{key}"}}},
            CustomerMetadataProperties={"RunName": f"r{i}"},
        )["ModelPackageArn"])
    from mltp.aws import Clients

    found = history.collect(group, Clients(region, aws_env), make(model_package_arn=arns[-1]))
    assert [(v["version"], v["metrics"].get("auc")) for v in found["versions"]] == [(1, 0.91), (6, 0.95)]
    note = found["note"]
    assert "v2: its evaluation.json: is not UTF-8 text" in note, note
    assert "v3: its evaluation.json: not valid JSON (nested too deeply to read)" in note, note
    assert "v4: its evaluation.json: is over the limit of 1024 KiB" in note, note
    assert "and 1 more version(s)" in note and "v5" not in note  # counted, not named
    # The report is written with the note in it.
    outcome = make(model_package_arn=arns[-1])
    outcome.history = found
    page = report_html.render(json.loads(json.dumps(outcome.to_dict())))
    assert "nested too deeply" in page


# --------------------------------------------------------------------------- in a real browser


@pytest.fixture(scope="module")
def browser():
    executable, reason = chromium_or_reason()
    if not executable:
        pytest.skip(reason)
    instance = Browser(executable)
    try:
        yield instance
    finally:
        instance.close()


def test_charts_render_behind_jenkins_csp_without_violations(browser, tmp_path):
    report.write(with_history(make()), tmp_path / "passed")
    report.write(with_history(gate_failed(), this_run_registered=False), tmp_path / "gate")
    with CspServer(tmp_path) as server:
        for folder, charts in (("passed", ("#chart-auc", "#chart-false-positive-rate")),
                               ("gate", ("#chart-auc", "#chart-false-positive-rate"))):
            browser.open(server.url + f"{folder}/report.html")
            assert browser.csp_violations() == [], folder
            for selector in charts:
                image = browser.pixels(selector)
                assert image.width >= 460 and image.height >= 200, selector
                assert image.not_background() > 1500, selector  # axes, line, points, labels
                assert image.near(AMBER) > 60, selector  # this run, highlighted
                assert image.near(RED, tolerance=60) > 100, selector  # the threshold line
            timeline = browser.pixels("#timeline")
            assert timeline.not_background() > 2000
            verdict = browser.pixels("#verdict svg")
            assert verdict.near((0x1A, 0x7F, 0x37) if folder == "passed" else RED, tolerance=30) > 1500
            # the stylesheet beside the page was applied: the status band has its colour, the text its font
            band = "rgb(26, 127, 55)" if folder == "passed" else "rgb(207, 34, 46)"
            assert browser.computed_style("#status", "background-color") == band, folder
            assert "serif" not in (browser.computed_style("body", "font-family") or "").replace("sans-serif", "")
            assert browser.computed_style("#gate", "border-collapse") == "collapse"
            header = browser.pixels("#status")
            assert header.near((0x1A, 0x7F, 0x37) if folder == "passed" else RED, tolerance=20) > header.width * 20


def test_without_its_stylesheet_the_page_is_plain_so_the_check_can_fail(browser, tmp_path):
    """The control for the stylesheet check above: the same page with report.css
    missing has an uncoloured status band, and still no violation."""
    report.write(with_history(make()), tmp_path)
    (tmp_path / "report.css").unlink()
    with CspServer(tmp_path) as server:
        browser.open(server.url + "report.html")
        assert browser.csp_violations() == []
        assert browser.computed_style("#status", "background-color") == "rgba(0, 0, 0, 0)"


def test_the_checks_catch_a_csp_violation_and_a_blank_chart(browser, tmp_path):
    (tmp_path / "bad.html").write_text(
        '<!DOCTYPE html><html><head><style>p { color: red }</style></head><body>'
        '<p style="color: blue">styled</p><script>document.title = "x"</script>'
        '<svg xmlns="http://www.w3.org/2000/svg" id="blank" width="300" height="100">'
        '<rect x="0" y="0" width="300" height="100" fill="#ffffff"/></svg></body></html>')
    with CspServer(tmp_path) as server:
        browser.open(server.url + "bad.html")
        violations = browser.csp_violations()
        assert violations, "the style element, style attribute and script must be reported"
        assert browser.pixels("#blank").not_background() == 0


def test_the_report_of_a_real_local_run_renders_too(browser, tmp_path_factory):
    """Not a hand-made outcome: what `mltp run --local` writes, history from the emulator's registry.
    The run is the tiny model's passing run that test_local.py and test_parity.py read too (local_runs.py)."""
    from local_runs import shared_run

    ran, _, folder = shared_run(tmp_path_factory, "pass")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    data = json.loads((folder / "report.json").read_text())
    assert [v["this_run"] for v in data["history"]["versions"]] == [True]  # the version it just registered
    jobs = [s for s in data["steps"] if s.get("job_name")]
    assert len(jobs) == 3 and all(s["log_file"] == f"logs/{s['job_name']}.log" for s in jobs)
    assert all((folder / s["log_file"]).is_file() for s in jobs)  # written as each job ended, before the report
    with CspServer(folder) as server:
        browser.open(server.url + "report.html")
        assert browser.csp_violations() == []
        chart = browser.pixels("#chart-auc")
        assert chart.not_background() > 500 and chart.near(AMBER) > 60
        assert browser.pixels("#timeline").not_background() > 1000
