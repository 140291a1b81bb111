"""`mltp logs` against moto over HTTP: the run's history and its jobs' log
streams merged by time and labelled by step, --follow, --export (CreateExportTask
into S3), and --local from the files a local run keeps.

Executions are scripted as in test_wait (moto does not run SageMaker jobs); the
jobs' log lines are written where SageMaker writes them, one stream per job."""

import gzip
import json
import shutil
from datetime import datetime, timedelta, timezone
from typing import List

import pytest
from click.testing import CliRunner

from mltp import follow, log_group, runlogs
from mltp.aws import Clients
from mltp.cli import main
import test_wait
from test_wait import (REGION, Model, classic_sfn, pipeline_script, script_execution,  # noqa: F401 (fixtures)
                       unique)

# CloudWatch Logs (and moto) drop log events older than 14 days: the scripted
# runs happen two hours ago instead of on test_wait's fixed date.
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def model(example_repo, aws_env, classic_sfn, monkeypatch) -> Model:  # noqa: F811
    monkeypatch.setattr(test_wait, "T0", T0)
    return Model(example_repo, aws_env)


def job_log(model: Model, kind: str, job: str, lines, at_seconds: float) -> None:
    group = runlogs.LOG_GROUPS[kind]
    try:
        model.logs.create_log_group(logGroupName=group)
    except model.logs.exceptions.ResourceAlreadyExistsException:
        pass
    stream = f"{job}/algo-1-1714554000"
    model.logs.create_log_stream(logGroupName=group, logStreamName=stream)
    base = int((T0 + timedelta(seconds=at_seconds)).timestamp() * 1000)
    events = [{"timestamp": base + i * 1000, "message": text} for i, text in enumerate(lines)]
    model.logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def scripted_run(model: Model, end: str = "succeeded", now=lambda: 1e9, backdate: bool = False):
    ctx, data, arn = model.start()
    script_execution(arn, pipeline_script(now, data, end=end))
    if backdate:  # startDate as the script has it (export reads the run's time span)
        test_wait.sfn_backend().describe_execution(arn).start_date = T0.replace(tzinfo=None)
    job_log(model, "processing", data.PreprocessingJobName, ["reading raw", "wrote 3 splits"], 5)
    job_log(model, "training", data.TrainingJobName, ["epoch 1 loss=0.3", "epoch 2 loss=0.2"], 700)
    job_log(model, "processing", data.EvaluationJobName, ["auc=0.96"], 2800)
    # Another run's job in the same group must not show up.
    job_log(model, "training", unique(f"{model.name}-train"), ["not this run"], 701)
    return ctx, data, arn


def test_history_and_job_logs_merged_by_time_and_labelled_by_step(model):
    ctx, data, arn = scripted_run(model)
    lines: List[str] = []
    runlogs.show(ctx, Clients(REGION, model.endpoint), ctx.run_name, echo=lines.append)
    assert lines[0].startswith(f"logs of run {ctx.run_name} (SUCCEEDED)")
    body = lines[1:]
    steps = [line.split("|", 1)[0].split()[1] for line in body]
    texts = [line.split("| ", 1)[1] for line in body]
    assert "not this run" not in texts
    # Time order, each job line under its step, between the step's entry and exit.
    stamps = [line.split()[0] for line in body]
    assert stamps == sorted(stamps)
    assert body[0].endswith("run            | ExecutionStarted")
    assert ("Preprocessing", "reading raw") in zip(steps, texts)
    assert ("Training", "epoch 2 loss=0.2") in zip(steps, texts)
    assert ("Evaluation", "auc=0.96") in zip(steps, texts)
    entered = texts.index("TaskStateEntered", texts.index("TaskSucceeded"))  # Training's entry
    assert steps[entered] == "Training" and entered < texts.index("epoch 1 loss=0.3") < texts.index("epoch 2 loss=0.2")
    assert texts.index("epoch 2 loss=0.2") < texts.index("auc=0.96")
    assert ("Gate", "ChoiceStateEntered") in zip(steps, texts)
    assert body[-1].endswith("run            | ExecutionSucceeded")
    assert body[3].startswith((T0 + timedelta(seconds=1.2)).strftime("%Y-%m-%dT%H:%M:%S.2"))


def test_newest_run_by_default_and_failures_show_error_and_cause(model):
    scripted_run(model)
    ctx, data, arn = scripted_run(model, end="gate")
    result = CliRunner().invoke(main, ["logs", str(model.repo), "--endpoint-url", model.endpoint])
    assert result.exit_code == 0, result.output
    assert f"logs of run {ctx.run_name} (FAILED)" in result.output.splitlines()[0]
    assert "MetricGateFailed | FailStateEntered" in result.output
    assert "run            | ExecutionFailed: MetricGateFailed: the model missed its metric gate" in result.output


def test_unknown_run_is_exit_2(model):
    result = CliRunner().invoke(main, ["logs", str(model.repo), "--run", "no-such-run", "--endpoint-url", model.endpoint])
    assert result.exit_code == 2 and "no run no-such-run" in result.output, result.output


def test_follow_prints_new_lines_until_the_run_ends(model):
    clock = follow.ManualClock()
    ctx, data, arn = model.start()
    script_execution(arn, pipeline_script(clock.now, data))
    job_log(model, "training", data.TrainingJobName, ["halfway"], 1500)
    lines: List[str] = []
    sleeps: List[float] = []

    def sleep(seconds):
        sleeps.append(seconds)
        clock.sleep(600)  # each poll, ten minutes of the run go by

    runlogs.show(ctx, Clients(REGION, model.endpoint), ctx.run_name, follow=True, echo=lines.append, sleep=sleep)
    assert lines[0].endswith(f"(RUNNING): {arn}")
    texts = [line.split("| ", 1)[1] for line in lines[1:]]
    assert len(texts) == len(set(zip(texts, lines[1:])))  # nothing printed twice
    assert texts[-1] == "ExecutionSucceeded" and "halfway" in texts
    assert len(sleeps) == 6 and set(sleeps) == {5.0}


def test_export_waits_for_each_task_and_says_where_the_files_are(model):
    ctx, data, arn = scripted_run(model, backdate=True)
    clients = Clients(REGION, model.endpoint)
    group = log_group.group_name(model.config)
    model.logs.create_log_group(logGroupName=group)
    model.logs.create_log_stream(logGroupName=group, logStreamName="states/x/2024-05-01/1")
    model.logs.put_log_events(logGroupName=group, logStreamName="states/x/2024-05-01/1", logEvents=[
        {"timestamp": int((T0 + timedelta(seconds=1)).timestamp() * 1000), "message": '{"type":"ExecutionStarted"}'}])
    lines: List[str] = []
    written = runlogs.export(ctx, clients, ctx.run_name, None, echo=lines.append, sleep=lambda s: None)
    base = f"s3://{model.bucket}/mltp/{model.name}/runs/{ctx.run_name}/logs"
    assert written == [f"{base}/{label}/" for label in ("states", "preprocessing", "training", "evaluation")]
    assert all("file" in line for line in lines), lines
    keys = [o["Key"] for o in model.s3.list_objects_v2(Bucket=model.bucket, Prefix=f"mltp/{model.name}/runs/")["Contents"]]
    training = [k for k in keys if "/logs/training/" in k and k.endswith(".gz")]
    assert training, keys
    texts = [gzip.decompress(model.s3.get_object(Bucket=model.bucket, Key=k)["Body"].read()).decode() for k in training]
    assert len(texts) == 1 and "epoch 2 loss=0.2" in texts[0]  # this run's job only, not others in the group
    assert "not this run" not in texts[0]


def test_export_to_a_given_place_and_bad_uris(model):
    ctx, data, arn = scripted_run(model, backdate=True)
    other = unique("exports")
    model.s3.create_bucket(Bucket=other, CreateBucketConfiguration={"LocationConstraint": REGION})
    result = CliRunner().invoke(main, ["logs", str(model.repo), "--run", ctx.run_name, "--endpoint-url", model.endpoint,
                                       "--export", f"s3://{other}/audit/"])
    assert result.exit_code == 0, result.output
    assert f"export: training: s3://{other}/audit/training/ (1 file)" in result.output
    assert "export: states: nothing logged" in result.output  # no state machine log group in this test
    default = CliRunner().invoke(main, ["logs", str(model.repo), "--run", ctx.run_name, "--endpoint-url",
                                        model.endpoint, "--export"])  # no value: beside the run's artifacts
    assert default.exit_code == 0, default.output
    assert f"export: training: s3://{model.bucket}/mltp/{model.name}/runs/{ctx.run_name}/logs/training/ (1 file)" \
        in default.output
    bad = CliRunner().invoke(main, ["logs", str(model.repo), "--run", ctx.run_name, "--endpoint-url", model.endpoint,
                                    "--export", "bucket/path"])
    assert bad.exit_code == 2 and "not an S3 URI" in bad.output, bad.output


def test_export_waits_its_turn_and_reports_a_failed_task(model, monkeypatch):
    ctx, data, arn = scripted_run(model, backdate=True)
    clients = Clients(REGION, model.endpoint)
    real_create, real_describe = clients.logs.create_export_task, clients.logs.describe_export_tasks
    busy = {"left": 2}

    def create(**kwargs):  # CloudWatch Logs runs one export per account at a time
        if busy["left"]:
            busy["left"] -= 1
            import botocore.exceptions

            raise botocore.exceptions.ClientError({"Error": {"Code": "LimitExceededException", "Message": "busy"}},
                                                  "CreateExportTask")
        return real_create(**kwargs)

    def describe(**kwargs):
        answer = real_describe(**kwargs)
        answer["exportTasks"][0]["status"] = {"code": "FAILED", "message": "bucket policy denies logs.amazonaws.com"}
        return answer

    monkeypatch.setattr(clients.logs, "create_export_task", create)
    monkeypatch.setattr(clients.logs, "describe_export_tasks", describe)
    sleeps: List[float] = []
    with pytest.raises(runlogs.AwsRefused, match="failed: bucket policy denies logs.amazonaws.com"):
        runlogs.export(ctx, clients, ctx.run_name, None, echo=lambda line: None, sleep=sleeps.append)
    assert busy["left"] == 0 and len(sleeps) == 2


def test_local_logs_from_the_files_a_local_run_keeps(example_repo, tmp_path):
    folder = example_repo / ".mltp" / "runs" / "fraud-detection-20261126-140000"
    (folder / "logs").mkdir(parents=True)
    steps = [
        {"name": "Preprocessing", "status": "succeeded", "job_name": "fd-prep-1", "started": "2026-11-26T14:00:01+00:00",
         "ended": "2026-11-26T14:00:09+00:00"},
        {"name": "Training", "status": "failed", "job_name": "fd-train-1", "started": "2026-11-26T14:00:10+00:00",
         "ended": "2026-11-26T14:00:30+00:00"},
        {"name": "Evaluation", "status": "not run", "job_name": "fd-eval-1", "started": None, "ended": None},
    ]
    (folder / "report.json").write_text(json.dumps({"run": folder.name, "status": "failed", "steps": steps}))
    (folder / "logs" / "fd-prep-1.log").write_text("read 1000 rows\nwrote splits\n")
    (folder / "logs" / "fd-train-1.log").write_text("Traceback (most recent call last):\nValueError: NaN\n")
    result = CliRunner().invoke(main, ["logs", str(example_repo), "--local"])
    assert result.exit_code == 0, result.output
    out = result.output.splitlines()
    assert out[0] == f"logs of local run {folder.name} (failed): {folder}"
    labels = [(line.split("|", 1)[0].split()[-1], line.split("| ", 1)[1]) for line in out[1:]]
    assert labels == [("Preprocessing", "entered"), ("Preprocessing", "read 1000 rows"), ("Preprocessing", "wrote splits"),
                      ("Preprocessing", "succeeded"), ("Training", "entered"),
                      ("Training", "Traceback (most recent call last):"), ("Training", "ValueError: NaN"),
                      ("Training", "failed")]
    missing = CliRunner().invoke(main, ["logs", str(example_repo), "--local", "--run", "nope"])
    assert missing.exit_code == 2 and "no local run nope" in missing.output
    shutil.rmtree(example_repo / ".mltp")
    none = CliRunner().invoke(main, ["logs", str(example_repo), "--local"])
    assert none.exit_code == 2 and "mltp run --local" in none.output
