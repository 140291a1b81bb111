"""The report folder: report.json, report.md, junit.xml, summary.txt (docs/contract.md, 9.3).

Built from Outcome objects directly (no AWS), plus one check that `wait`
writes the folder for each outcome it can reach against moto.
"""

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


def make(status=out.PASSED, **changes) -> out.Outcome:
    steps = [
        out.StepRecord("Preprocessing", out.SUCCEEDED, "fd-prep-1", "processing", "https://console/prep",
                       T0, T0 + timedelta(minutes=4, seconds=12), "Task"),
        out.StepRecord("Training", out.SUCCEEDED, "fd-train-1", "training", "https://console/train",
                       T0 + timedelta(minutes=5), T0 + timedelta(minutes=40), "Task"),
        out.StepRecord("Evaluation", out.SUCCEEDED, "fd-eval-1", "processing", "https://console/eval",
                       T0 + timedelta(minutes=40), T0 + timedelta(minutes=48), "Task"),
    ]
    values = dict(
        status=status, model="fraud-detection", state_machine="fraud-detection", run_name="jenkins-x-42",
        execution_arn=ARN, region="ap-northeast-2", branch="main", commit="0123abc", build_url="https://ci/job/x/42/",
        register=True, execution_status="SUCCEEDED", execution_link="https://console/exec", started=T0,
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
    steps = make().steps[:1] + [out.StepRecord("Training", out.STEP_FAILED, "fd-train-1", "training", "https://console/train",
                                               T0 + timedelta(minutes=5), T0 + timedelta(minutes=6), "Task")]
    return make(out.FAILED, execution_status="FAILED", model_package_arn=None, approval_status=None, steps=steps,
                gate=[out.GateCheck("auc", ">= 0.9"), out.GateCheck("false_positive_rate", "<= 0.05")],
                message="run failed at Training: AlgorithmError: <ValueError> & \"NaN\" | \x1b[31mred\x1b[0m",
                failure=out.Failure("Training", "fd-train-1", "States.TaskFailed", "AlgorithmError: <ValueError> & \"NaN\"",
                                    "/aws/sagemaker/TrainingJobs", ["Traceback (most recent call last):", "ValueError: NaN"],
                                    "https://console/logs"))


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
        "link": "https://console/prep", "started": T0.isoformat(), "ended": (T0 + timedelta(minutes=4, seconds=12)).isoformat(),
        "duration_seconds": 252.0, "error": None, "log_link": None,
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
    assert "| Training | [fd-train-1](https://console/train) | succeeded | 35m 00s |" in text
    assert f"| Model package | {PACKAGE} (PendingManualApproval) |" in text
    assert "| Build | [https://ci/job/x/42/](https://ci/job/x/42/) |" in text
    failed = report.markdown(step_failed())
    assert failed.startswith("# fraud-detection: FAILED\n")
    assert "\\| " in failed  # a '|' in the message does not break the tables
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
    outcome.steps[1].log_link = "https://console/logs/fd-train-1"
    text = report.write(outcome, tmp_path)["report.md"].read_text()
    assert "| Step | Job | Status | Duration | Log |" in text
    row = next(line for line in text.splitlines() if line.startswith("| Training |"))
    assert row.endswith("| [log stream](https://console/logs/fd-train-1) |")
    preprocessing = next(line for line in text.splitlines() if line.startswith("| Preprocessing |"))
    assert preprocessing.endswith("| - |")  # no link known: a dash, not a broken link
