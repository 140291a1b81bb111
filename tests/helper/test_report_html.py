"""report.html: what it shows, that it is CSP-safe, and that it renders in a real
browser behind Jenkins' Content Security Policy for archived artifacts.

The browser tests run Debian's chromium headless (installed by `make chromium`)
and read what it drew: a screenshot of each chart's box must have pixels that
are not background (the amber point of this run among them), and the browser
must report no CSP violation. Two controls prove the checks can fail: a page
that breaks the policy is reported, a blank box is seen as blank.
"""

import json
import os
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
    assert "script" not in found.tags and "style" not in found.tags and "link" not in found.tags
    assert "img" not in found.tags and "iframe" not in found.tags and "object" not in found.tags
    assert not [a for a in found.attrs if a[1] == "style" or a[1].startswith("on")]
    assert not [a for a in found.attrs if a[1] in ("src", "xlink:href") or (a[1] == "href" and a[0] != "a")]
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
    data = json.loads(paths["report.json"].read_text())
    assert [v["version"] for v in data["history"]["versions"]] == [1, 2, 3, 4]


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
                assert image.width >= 500 and image.height >= 200, selector
                assert image.not_background() > 1500, selector  # axes, line, points, labels
                assert image.near(AMBER) > 60, selector  # this run, highlighted
                assert image.near(RED, tolerance=60) > 100, selector  # the threshold line
            timeline = browser.pixels("#timeline")
            assert timeline.not_background() > 2000
            verdict = browser.pixels("#verdict svg")
            assert verdict.near((0x1A, 0x7F, 0x37) if folder == "passed" else RED, tolerance=30) > 1500


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


def test_the_report_of_a_real_local_run_renders_too(browser, tmp_path):
    """Not a hand-made outcome: what `mltp run --local` writes, history from the emulator's registry."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = tmp_path / "tiny"
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "tiny", repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLTP_", "BUILD_", "BRANCH_", "GIT_"))}
    ran = subprocess.run([sys.executable, "-m", "mltp.cli", "run", ".", "--local", "--run-name", "real"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=240)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    folder = repo / ".mltp" / "runs" / "real"
    data = json.loads((folder / "report.json").read_text())
    assert [v["this_run"] for v in data["history"]["versions"]] == [True]  # the version it just registered
    with CspServer(folder) as server:
        browser.open(server.url + "report.html")
        assert browser.csp_violations() == []
        chart = browser.pixels("#chart-auc")
        assert chart.not_background() > 500 and chart.near(AMBER) > 60
        assert browser.pixels("#timeline").not_background() > 1000
