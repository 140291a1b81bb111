"""The report folder: report.json, report.md, junit.xml, summary.txt (docs/contract.md, 9.3).

Built from Outcome objects directly (no AWS), plus one check that `wait`
writes the folder for each outcome it can reach against moto.
"""

import dataclasses
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

import pytest

from mltp import follow
from mltp import outcome as out
from mltp import report
from mltp.errors import MltpError
from test_wait import Model, classic_sfn, pipeline_script, script_execution  # noqa: F401 (classic_sfn: a fixture)

T0 = datetime(2024, 5, 1, 9, 0, 0, tzinfo=timezone.utc)
PACKAGE = "arn:aws:sagemaker:ap-northeast-2:123456789012:model-package/fraud-detection/3"
ARN = "arn:aws:states:ap-northeast-2:123456789012:execution:fraud-detection:jenkins-x-42"
# The console addresses mltp builds (follow.links._console): the only links report.md makes.
CONSOLE = "https://ap-northeast-2.console.aws.amazon.com"


def make(status=out.PASSED, **changes) -> out.Outcome:
    steps = [
        out.StepRecord("Preprocessing", out.SUCCEEDED, "fd-prep-1", "processing", f"{CONSOLE}/prep",
                       T0, T0 + timedelta(minutes=4, seconds=12), "Task"),
        out.StepRecord("Training", out.SUCCEEDED, "fd-train-1", "training", f"{CONSOLE}/train",
                       T0 + timedelta(minutes=5), T0 + timedelta(minutes=40), "Task"),
        out.StepRecord("Evaluation", out.SUCCEEDED, "fd-eval-1", "processing", f"{CONSOLE}/eval",
                       T0 + timedelta(minutes=40), T0 + timedelta(minutes=48), "Task"),
    ]
    values = dict(
        status=status, model="fraud-detection", state_machine="fraud-detection", run_name="jenkins-x-42",
        execution_arn=ARN, region="ap-northeast-2", branch="main", commit="0123abc", build_url="https://ci/job/x/42/",
        register=True, execution_status="SUCCEEDED", execution_link=f"{CONSOLE}/exec", started=T0,
        ended=T0 + timedelta(minutes=50), steps=steps,
        gate=[out.GateCheck("auc", ">= 0.9", 0.962, True), out.GateCheck("false_positive_rate", "<= 0.05", 0.0007, True)],
        model_package_arn=PACKAGE, approval_status="PendingManualApproval", message="passed",
    )
    values.update(changes)
    return out.Outcome(**values)


def gate_failed() -> out.Outcome:
    return make(out.GATE_FAILED, execution_status="FAILED", model_package_arn=None, approval_status=None,
                gate=[out.GateCheck("auc", ">= 0.9", 0.85, False), out.GateCheck("false_positive_rate", "<= 0.05", 0.0007, True),
                      out.GateCheck("recall", ">= 0.5", None, False)],
                message="metric gate failed: auc = 0.85, needs >= 0.9; recall is missing from evaluation.json (needs >= 0.5)")


def step_failed() -> out.Outcome:
    steps = make().steps[:1] + [out.StepRecord("Training", out.STEP_FAILED, "fd-train-1", "training", f"{CONSOLE}/train",
                                               T0 + timedelta(minutes=5), T0 + timedelta(minutes=6), "Task")]
    return make(out.FAILED, execution_status="FAILED", model_package_arn=None, approval_status=None, steps=steps,
                gate=[out.GateCheck("auc", ">= 0.9"), out.GateCheck("false_positive_rate", "<= 0.05")],
                message="run failed at Training: AlgorithmError: <ValueError> & \"NaN\" | \x1b[31mred\x1b[0m",
                failure=out.Failure("Training", "fd-train-1", "States.TaskFailed", "AlgorithmError: <ValueError> & \"NaN\"",
                                    "/aws/sagemaker/TrainingJobs", ["Traceback (most recent call last):", "ValueError: NaN"],
                                    f"{CONSOLE}/logs"))


def junit_of(outcome, tmp_path):
    paths = report.write(outcome, tmp_path)
    return ET.parse(paths["junit.xml"]).getroot()


def test_the_four_files_are_written(tmp_path):
    paths = report.write(make(), tmp_path / "nested" / "dir")
    assert sorted(p.name for p in (tmp_path / "nested" / "dir").iterdir()) == sorted(report.FILES)
    assert set(paths) == set(report.FILES)


def test_report_json_is_machine_readable(tmp_path):
    data = json.loads(report.write(make(), tmp_path)["report.json"].read_text())
    for key in ("model", "state_machine", "run", "execution_arn", "branch", "commit", "build_url", "status",
                "exit_code", "steps", "gate", "model_package", "failure"):
        assert key in data, key
    assert data["status"] == "passed" and data["exit_code"] == 0
    assert data["model_package"] == {"arn": PACKAGE, "name": "fraud-detection/3", "approval_status": "PendingManualApproval",
                                     "sha256": None}
    assert data["steps"][0] == {
        "name": "Preprocessing", "status": "succeeded", "job_name": "fd-prep-1", "job_kind": "processing",
        "link": f"{CONSOLE}/prep", "started": T0.isoformat(), "ended": (T0 + timedelta(minutes=4, seconds=12)).isoformat(),
        "duration_seconds": 252.0, "error": None, "log_link": None, "log_file": None,
    }
    assert data["gate"][0] == {"metric": "auc", "rule": ">= 0.9", "value": 0.962, "passed": True}
    failed = json.loads(report.write(step_failed(), tmp_path / "f")["report.json"].read_text())
    assert failed["exit_code"] == 4 and failed["failure"]["step"] == "Training"
    assert failed["failure"]["log_tail"][-1] == "ValueError: NaN"


def test_summary_is_one_line_for_the_build_description(tmp_path):
    report.write(make(), tmp_path)
    assert (tmp_path / "summary.txt").read_text() == (
        "fraud-detection run jenkins-x-42: PASSED auc=0.962 (>= 0.9), false_positive_rate=0.0007 (<= 0.05); "
        "registered fraud-detection/3 (PendingManualApproval)\n")
    assert report.summary(make(register=False, model_package_arn=None)).endswith("; not registered (branch build)")
    assert report.summary(gate_failed()) == (
        "fraud-detection run jenkins-x-42: GATE FAILED auc=0.85 (>= 0.9) missed, false_positive_rate=0.0007 (<= 0.05), "
        "recall=missing (>= 0.5) missed; not registered")
    assert report.summary(step_failed()).startswith("fraud-detection run jenkins-x-42: FAILED: run failed at Training")
    stopped = make(out.TIMED_OUT, message="timed out after 90 min")
    assert report.summary(stopped) == "fraud-detection run jenkins-x-42: TIMED OUT: timed out after 90 min"
    multiline = make(out.FAILED, message="run failed at Training: AlgorithmError:\nExitCode 1\nValueError: NaN")
    assert report.summary(multiline).endswith("FAILED: run failed at Training: AlgorithmError: ExitCode 1 ValueError: NaN")
    for outcome in (make(), gate_failed(), step_failed(), stopped, multiline):
        assert "\n" not in report.summary(outcome)


def test_outcome_txt_gives_the_jenkins_steps_status_run_and_values_as_key_value_lines(tmp_path):
    report.write(make(), tmp_path)
    assert (tmp_path / "outcome.txt").read_text() == (
        "status=passed\nrun=jenkins-x-42\nchampion=\nmetric.auc=0.962\nmetric.false_positive_rate=0.0007\n")
    # a missed gate: a missing value is empty; a metric with a champion rule is listed once
    missed = gate_failed()
    missed.gate.append(out.GateCheck("auc", "beats champion", 0.85, False, "champion 0.93"))
    missed.champion = {"Version": 2, "Arn": "arn:aws:sagemaker:r:1:model-package/fraud-detection/2", "Metrics": {"auc": 0.93}}
    missed.comparison = [{"metric": "auc", "champion": 0.93, "challenger": 0.85, "delta": -0.08, "verdict": "worse"},
                         {"metric": "recall", "champion": None, "challenger": None, "delta": None, "verdict": "n/a"}]
    report.write(missed, tmp_path / "g")
    lines = (tmp_path / "g" / "outcome.txt").read_text().splitlines()
    assert lines == ["status=gate_failed", "run=jenkins-x-42", "champion=fraud-detection/2", "metric.auc=0.85",
                     "metric.false_positive_rate=0.0007", "metric.recall=", "champion.auc=0.93", "champion.recall="]
    report.write(step_failed(), tmp_path / "f")
    assert (tmp_path / "f" / "outcome.txt").read_text().splitlines()[0] == "status=failed"
    for text in ((tmp_path / d / "outcome.txt").read_text() for d in ("", "g", "f")):
        assert all(line.count("=") >= 1 and "\x1b" not in line for line in text.splitlines())


def test_junit_has_one_case_per_rule(tmp_path):
    root = junit_of(make(), tmp_path)
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["auc >= 0.9", "false_positive_rate <= 0.05"]
    assert {c.get("classname") for c in cases} == {"mltp.gate.fraud-detection"}
    assert suite.get("tests") == "2" and suite.get("failures") == "0"
    assert not suite.findall(".//failure")


def test_junit_marks_missed_rules_as_failures(tmp_path):
    suite = junit_of(gate_failed(), tmp_path).find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "2"
    failed = {c.get("name"): c.find("failure") for c in suite.findall("testcase")}
    assert failed["auc >= 0.9"].get("message") == "auc = 0.85, needs >= 0.9"
    assert failed["false_positive_rate <= 0.05"] is None
    assert "missing" in failed["recall >= 0.5"].get("message")


def test_junit_skips_rules_a_failed_run_never_reached_and_escapes_text(tmp_path):
    raw = report.write(step_failed(), tmp_path)["junit.xml"].read_text()
    assert "\x1b" not in raw  # not representable in XML 1.0: dropped
    suite = ET.fromstring(raw.encode()).find("testsuite")
    assert suite.get("skipped") == "2" and suite.get("failures") == "0"
    skipped = suite.find("testcase/skipped")
    assert skipped.get("message").startswith("not evaluated: run failed at Training: AlgorithmError: <ValueError> & \"NaN\" |")


def test_markdown_for_release_managers(tmp_path):
    text = report.write(make(), tmp_path)["report.md"].read_text()
    assert text.startswith("# fraud-detection: PASSED\n")
    assert "| auc | 0.962 | >= 0.9 | pass |" in text
    assert f"| Training | [fd-train-1]({CONSOLE}/train) | succeeded | 35m 00s |" in text
    assert f"| Model package | {PACKAGE} (PendingManualApproval) |" in text
    assert "| Build | `https://ci/job/x/42/` |" in text  # not a console address mltp builds: text
    failed = report.markdown(step_failed())
    assert failed.startswith("# fraud-detection: FAILED\n")
    assert "**FAILED**: `run failed at Training: AlgorithmError: <ValueError> & \"NaN\" | \\x1b[31mred\\x1b[0m`" in failed
    assert "```\nTraceback (most recent call last):\nValueError: NaN\n```" in failed
    assert "| auc | n/a | >= 0.9 | not evaluated |" in failed


def test_console_table(tmp_path):
    lines = report.console_lines(gate_failed())
    assert "fraud-detection run jenkins-x-42: GATE FAILED" in lines
    rows = [l.split() for l in lines if l.startswith(("auc", "recall"))]
    assert rows == [["auc", "0.85", ">=", "0.9", "FAIL"], ["recall", "missing", ">=", "0.5", "FAIL"]]
    assert f"model package: {PACKAGE} (PendingManualApproval)" in report.console_lines(make())
    assert "model package: not registered (branch build)" in report.console_lines(make(register=False, model_package_arn=None))


@pytest.mark.parametrize("status,code", [(out.PASSED, 0), (out.GATE_FAILED, 3), (out.FAILED, 4), (out.STOPPED, 4),
                                         (out.TIMED_OUT, 4)])
def test_exit_code_per_status(status, code):
    assert make(status).exit_code == code


def test_wait_writes_the_report_for_every_known_outcome(example_repo, aws_env, classic_sfn, tmp_path):
    model = Model(example_repo, aws_env)
    cases = {}
    ctx, data, arn = model.start()  # passed
    model.put_evaluation(data, auc=0.95, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(lambda: 1e9, data, package_arn=model.register(ctx.run_name)))
    cases["passed"] = ctx
    ctx, data, arn = model.start()  # gate failed
    model.put_evaluation(data, auc=0.5, false_positive_rate=0.01)
    script_execution(arn, pipeline_script(lambda: 1e9, data, end="gate"))
    cases["gate_failed"] = ctx
    ctx, data, arn = model.start()  # stopped
    model.sfn.stop_execution(executionArn=arn)
    cases["stopped"] = ctx
    for status, ctx in cases.items():
        target = tmp_path / status
        try:
            model.wait(ctx, clock=follow.ManualClock(), report_dir=str(target))
        except MltpError:
            pass
        # plus what the Jenkins approval reads (commands.wait.write_approval_files): registration.txt once registered
        approval = ["gate.txt"] + (["registration.txt"] if status == "passed" else [])
        assert sorted(p.name for p in target.iterdir()) == sorted(list(report.FILES) + approval)
        assert json.loads((target / "report.json").read_text())["status"] == status
        assert ET.parse(target / "junit.xml").getroot().find("testsuite").get("tests") == "2"


def test_one_line_cuts_at_a_word_boundary():
    text = "run failed at Training: train.py: ValueError: " + "column amount has non-numeric values " * 20
    cut = out.one_line(text, 120)
    assert len(cut) <= 120 and cut.endswith("...")
    assert text.startswith(cut[:-3]) and text[len(cut) - 3] == " "  # the cut falls between words
    assert out.one_line("short", 120) == "short"


@pytest.mark.parametrize("text,expected", [
    ("Traceback (most recent call last):\n  File \"t.py\", line 1\n    x()\nKeyError: 'amount'\nstdout noise", "KeyError: 'amount'"),
    ("AlgorithmError: train.py exited with code 1: ValueError: bad", "ValueError: bad"),
    ('AlgorithmError: ExecuteUserScriptError:\nExitCode 1\nErrorMessage "sklearn.exceptions.NotFittedError: not fitted"',
     "sklearn.exceptions.NotFittedError: not fitted"),
    ("ClientError: no data found at s3://b/k", None),
])
def test_exception_line_finds_what_the_script_died_of(text, expected):
    assert out.exception_line(text) == expected


def test_markdown_outside_jenkins_has_no_placeholder_links_and_times_to_the_second():
    local = make(build_url="", commit="", execution_link=None, branch="feature/x",
                 started=T0.replace(microsecond=654321), ended=T0 + timedelta(seconds=61, microseconds=5))
    for step in local.steps:  # a local run has no console to link to
        step.link = None
    text = report.markdown(local)
    assert "](" not in text and "unknown" not in text
    assert "| Branch | feature/x |" in text and "| Build | - (not built by Jenkins) |" in text
    assert "| Started | 2024-05-01 09:00:00 UTC |" in text and "| Ended | 2024-05-01 09:01:01 UTC |" in text
    assert "654321" not in text


def test_report_md_links_each_jobs_log_stream(tmp_path):
    outcome = make()
    outcome.steps[1].log_link = f"{CONSOLE}/logs/fd-train-1"
    text = report.write(outcome, tmp_path)["report.md"].read_text()
    assert "| Step | Job | Status | Duration | Log |" in text
    row = next(line for line in text.splitlines() if line.startswith("| Training |"))
    assert row.endswith(f"| [log stream]({CONSOLE}/logs/fd-train-1) |")
    preprocessing = next(line for line in text.splitlines() if line.startswith("| Preprocessing |"))
    assert preprocessing.endswith("| - |")  # no link known: a dash, not a broken link


def test_report_files_are_never_written_through_links_left_in_the_folder(tmp_path):
    """Links a cloned repo (or a job) left in the report folder, at the files' names
    and at their temporary names: replaced as links, what they point at unchanged."""
    import os

    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    folder = tmp_path / "report"
    folder.mkdir()
    for name in report.FILES:
        for planted in (name, f".{name}.tmp", f".{name}.{os.getpid()}.tmp"):
            os.symlink(outside, folder / planted)
    paths = report.write(make(), folder)
    assert outside.read_text() == "precious\n"
    for name in report.FILES:
        assert not paths[name].is_symlink() and paths[name].stat().st_size > 0

# --------------------------------------------------------------------------- untrusted text (issue 20, H8/H17)

EVIL = '<a href="https://evil.example/approve">PASSED: click to approve</a>'


def hostile() -> out.Outcome:
    """A failed run whose every outside-controlled string is hostile: the reason
    (an HTML link, a javascript: link, a Markdown image, an ESC sequence), the
    branch, the build URL, a warning, a gate note and a step link."""
    outcome = step_failed()
    outcome.message = f"run failed at Training: {EVIL} [ok](javascript:alert(1)) \x1b[2J\x1b]8;;https://evil/\x07"
    outcome.failure.reason = f"AlgorithmError: {EVIL}"
    outcome.failure.log_tail = ["<script>alert(1)</script>", "\x1b[31mred\x1b[0m"]
    outcome.branch = "<img src=x onerror=alert(1)>"
    outcome.build_url = "javascript:alert(1)//https://"
    outcome.warnings = ["![pixel](https://evil.example/p.png) \u202eexe.txt"]
    outcome.gate[0] = dataclasses.replace(outcome.gate[0], value=0.5, passed=False, note=EVIL)
    outcome.steps[0].link = "https://evil.example/approve"
    outcome.execution_link = "https://ap-northeast-2.console.aws.amazon.com.evil.example/x"
    return outcome


def _no_raw_markup(text: str) -> None:
    import re

    # No tag outside a code span, no Markdown link or image, no control character.
    outside = re.sub(r"(?ms)^(\s*)(`{3,}).*?^\1\2", "", text)  # drop fenced blocks
    outside = re.sub(r"(`+)(?:(?!\1).)*?\1", "", outside)  # and code spans
    assert not re.search(r"<[A-Za-z/!?]", outside), outside
    targets = re.findall(r"\]\(([^)]*)\)", outside)
    assert all(t.startswith(CONSOLE + "/") for t in targets), targets  # links only to the console
    assert "javascript:" not in outside.lower() and "://" not in re.sub(r"\]\([^)]*\)", "", outside), outside
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", text)


def test_report_md_shows_hostile_text_but_never_renders_it(tmp_path):
    text = report.write(hostile(), tmp_path)["report.md"].read_text()
    _no_raw_markup(text)
    assert "PASSED: click to approve" in text  # shown, as text
    assert "\\x1b[2J" in text and "\\u202e" in text  # control characters shown as escapes
    assert f"[Preprocessing]" not in text and "evil.example/approve)" not in text  # no link but to the console
    assert f"[fd-train-1]({CONSOLE}/train)" in text  # the links mltp builds stay


def test_summary_txt_has_no_html_and_no_control_characters(tmp_path):
    line = report.write(hostile(), tmp_path)["summary.txt"].read_text()
    assert line.count("\n") == 1 and line.endswith("\n")
    assert "<a" not in line and "<script" not in line.lower()
    assert not any(ord(c) < 32 and c != "\n" or 0x7f <= ord(c) <= 0x9f for c in line), repr(line)
    assert "\\x1b" in line and "PASSED: click to approve" in line
    assert "auc=0.962 (>= 0.9)" in report.summary(make()) and "(<= 0.05)" in report.summary(make())


def test_junit_and_html_carry_hostile_text_as_text(tmp_path):
    from html.parser import HTMLParser

    paths = report.write(hostile(), tmp_path)
    raw = paths["junit.xml"].read_text()
    assert "\x1b" not in raw and "\\x1b" in raw
    ET.fromstring(raw.encode())  # well-formed
    page = paths["report.html"].read_text()
    assert "\x1b" not in page and "\u202e" not in page

    class Links(HTMLParser):
        def __init__(self):
            super().__init__()
            self.hrefs, self.tags = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)
            if tag != "link":  # the page's own stylesheet, report.css, beside it
                self.hrefs += [v for k, v in attrs if k == "href"]

    found = Links()
    found.feed(page)
    assert "script" not in found.tags and "img" not in found.tags
    assert all(h.startswith(CONSOLE + "/") for h in found.hrefs), found.hrefs
    assert "PASSED: click to approve" in page and "&lt;a href=" in page  # shown as text
    good = Links()
    good.feed(report.write(make(), tmp_path / "good")["report.html"].read_text())
    assert f"{CONSOLE}/exec" in good.hrefs  # the console links mltp builds stay links


def test_training_metrics_are_shown_with_their_last_value(tmp_path):
    """steps.training.metric_definitions: report.json, report.md, report.html and the
    console show each metric's last value, 'no value' when the log never matched."""
    from mltp import report_html

    outcome = make(training_metrics=[{"name": "train_loss", "value": 0.0712}, {"name": "validation:auc", "value": None}])
    paths = report.write(outcome, tmp_path)
    data = json.loads(paths["report.json"].read_text())
    assert data["training_metrics"] == [{"name": "train_loss", "value": 0.0712}, {"name": "validation:auc", "value": None}]
    md = paths["report.md"].read_text()
    assert "## Training metrics" in md and "| train_loss | 0.0712 |" in md and "| validation:auc | no value |" in md
    page = paths["report.html"].read_text()
    assert '<table id="training-metrics">' in page and "<td>train_loss</td><td>0.0712</td>" in page
    assert "\n".join(report.console_lines(outcome)).count("train_loss") == 1
    # Without definitions: no section anywhere.
    plain = make()
    assert plain.to_dict()["training_metrics"] is None
    assert "Training metrics" not in report.markdown(plain)
    assert "training-metrics" not in report_html.render(json.loads(json.dumps(plain.to_dict())))
