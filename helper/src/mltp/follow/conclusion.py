"""The execution ended (or was stopped): settle its status and gather what the
report needs: the gate's values from evaluation.json, the registered model
package, or, through diagnosis, the failed step's reason and log."""

from datetime import datetime
from typing import Any, Dict, List, Optional

from .. import outcome as out
from ..aws import Clients
from ..context import RunContext
from ..errors import MltpError
from ..jobs import JOB_STATES
from .diagnosis import _died_of, _failure
from .links import job_link, job_log_link
from .watching import (_AWS_ERRORS, FINAL_STATUSES, GATE_ERROR, GATE_FAILED_STATE, USER_STATES, Tracker, Watcher,
                       _describe_error, _details, _json)


def _final_poll(watcher: Watcher, result: out.Outcome) -> None:
    try:
        watcher.poll()
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not read the end of the execution history: {_describe_error(exc)}")


def _end_time(tracker: Tracker) -> Optional[datetime]:
    return tracker.terminal.get("timestamp") if tracker.terminal else None


def _with_unrun_jobs(tracker: Tracker) -> List[out.StepRecord]:
    """The steps that ran, plus the job steps the run never reached (as 'not run')."""
    steps = list(tracker.steps)
    seen = {s.name for s in steps}
    for state in JOB_STATES:
        if state not in seen:
            job, kind = tracker.jobs.get(state, (None, JOB_STATES[state][1]))
            steps.append(out.StepRecord(name=state, status=out.NOT_RUN, job_name=job, job_kind=kind,
                                        link=job_link(tracker.region, kind, job) if tracker.links else None,
                                        state_type="Task",
                                        log_link=job_log_link(tracker.region, kind, job) if tracker.links else None))
    # What people see: the contract's steps, and an internal state only when it failed.
    return [s for s in steps if s.name in USER_STATES or (s.status in (out.STEP_FAILED, out.STEP_TIMED_OUT)
                                                         and s.name != GATE_FAILED_STATE)]


def _conclude(ctx: RunContext, clients: Clients, tracker: Tracker, arn: str,
              execution_input: Dict[str, Any], result: out.Outcome) -> None:
    """The execution ended: settle its status and gather what the report needs."""
    try:
        description = clients.sfn.describe_execution(executionArn=arn)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not describe the execution: {_describe_error(exc)}")
        description = {}
    status = description.get("status")
    if status not in FINAL_STATUSES:  # the history is ahead of DescribeExecution
        status = tracker.terminal_status
    if status == "PENDING_REDRIVE":  # failed, and a redrive was asked for
        status = "FAILED"
    details = _details(tracker.terminal or {})
    error = details.get("error") or description.get("error")
    cause = details.get("cause") or description.get("cause")
    result.execution_status = status
    result.ended = description.get("stopDate")
    champion = execution_input.get("Champion")
    result.champion = dict(champion) if isinstance(champion, dict) else {"Reason": "the run was started without a champion lookup"}
    training = _training_metrics(ctx, clients, execution_input, result)

    if status == "SUCCEEDED":
        result.status = out.PASSED
        output = _json(details.get("output") if "output" in details else description.get("output"))
        # A registered run's report reads the registry copies, which the version names.
        from .. import registry

        result.gate = _gate_checks(ctx, clients, registry.evaluation_read_from(execution_input, output), result,
                                   decided=True, training=training)
        if result.register:
            _find_model_package(ctx, clients, output, result)
            result.model_copy = registry.model_copy(execution_input, output)
        result.message = "passed"
        return
    if status == "FAILED" and error == GATE_ERROR:
        result.status = out.GATE_FAILED
        result.gate = _gate_checks(ctx, clients, execution_input, result, decided=False, training=training)
        missed = result.failed_checks
        result.message = ("metric gate failed: " + "; ".join(c.miss_message() for c in missed)) if missed else \
            "metric gate failed" + (f": {out.one_line(cause)}" if cause else "")
        result.failure = out.Failure(step="Gate", error=error, reason=result.message)
        return
    result.status = out.TIMED_OUT if status == "TIMED_OUT" else out.STOPPED if status == "ABORTED" else out.FAILED
    result.failure = _failure(ctx, clients, tracker, cause, error, result)
    where = f" at {result.failure.step}" if result.failure.step else ""
    if result.status == out.TIMED_OUT:
        result.message = f"the execution timed out{where}"
    elif result.status == out.STOPPED:
        result.message = f"stopped{where}: the execution was aborted" + (f" ({out.one_line(cause)})" if cause else "")
    else:
        result.message = f"run failed{where}: {out.one_line(_died_of(result.failure) or error or 'unknown error')}"


# --------------------------------------------------------------------------- gate


def _rule_text(result: Any) -> str:
    text = str(getattr(result, "rule", "") or "")
    return text[len(result.metric):].strip() if text.startswith(result.metric + " ") else text


def _training_metrics(ctx: RunContext, clients: Clients, execution_input: Dict[str, Any],
                      result: out.Outcome) -> Optional[Dict[str, float]]:
    """The training job's metrics (steps.training.metric_definitions): its
    FinalMetricDataList, which the state machine's Gate read too, on AWS and
    locally alike (training_metrics). Kept in the report, one row per definition;
    None without definitions or when the job cannot be described (never ran)."""
    from .. import training_metrics

    definitions = ctx.config.steps.training.metric_definitions
    job = execution_input.get("TrainingJobName")
    if not definitions or not job:
        return None
    try:
        described = clients.sagemaker.describe_training_job(TrainingJobName=job)
    except _AWS_ERRORS as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code") if hasattr(exc, "response") else None
        if code not in ("ValidationException", "ResourceNotFound"):  # a job that never started: nothing to say
            result.warnings.append(f"could not read the training job's metrics: {_describe_error(exc)}")
        return None
    values = training_metrics.from_metric_data(described.get("FinalMetricDataList"))
    result.training_metrics = training_metrics.table(definitions, values)
    return values


def _gate_checks(ctx: RunContext, clients: Clients, execution_input: Dict[str, Any],
                 result: out.Outcome, decided: bool,
                 training: Optional[Dict[str, float]] = None) -> List[out.GateCheck]:
    """The gate table from evaluation.json, and the training job's metrics for rules
    with source: training. `decided` is what the state machine's Gate said (True:
    passed), used for every rule when the file cannot be read."""
    from .. import gate

    bucket, key = execution_input.get("EvaluationBucket"), execution_input.get("EvaluationKey")
    unknown = [out.GateCheck(r.metric, r.describe(), None, True if decided else None) for r in ctx.config.gate]
    if not bucket or not key:
        result.warnings.append("the execution input names no evaluation.json; gate values unknown")
        return unknown
    try:
        source = f"s3://{bucket}/{key}"
        body = gate.read_evaluation(clients.s3.get_object(Bucket=bucket, Key=key)["Body"], source)
        metrics = gate.metric_values(body, source, rules=ctx.config.gate)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not read s3://{bucket}/{key}: {_describe_error(exc)}")
        return unknown
    except (MltpError, ValueError, TypeError, KeyError) as exc:
        result.warnings.append(f"s3://{bucket}/{key} is not a valid evaluation.json: {exc}")
        return unknown
    champion = execution_input.get("Champion") if isinstance(execution_input.get("Champion"), dict) else {}
    results = gate.evaluate(ctx.config.gate, metrics, champion, training=training)
    checks = [out.GateCheck(r.metric, _rule_text(r), r.value, bool(r.passed),
                            r.reason if (r.value is None or rule.beat_champion) else "")
              for r, rule in zip(results, ctx.config.gate)]
    result.comparison = gate.compare(ctx.config.gate, {**metrics, **gate.training_values(ctx.config.gate, training)},
                                     champion)
    if decided and not all(c.passed for c in checks):
        result.warnings.append("the state machine passed the gate, but evaluation.json as read now misses it")
    return checks


# --------------------------------------------------------------------------- model package


def _find_model_package(ctx: RunContext, clients: Clients, output: Any, result: out.Outcome) -> None:
    arn = None
    if isinstance(output, dict) and isinstance(output.get("register"), dict):
        arn = output["register"].get("ModelPackageArn")
    group = ctx.config.registry.model_package_group
    sm = clients.sagemaker
    try:
        if not arn:
            arn, description = _package_of_run(sm, group, ctx.run_name)
        else:
            description = sm.describe_model_package(ModelPackageName=arn)
    except _AWS_ERRORS as exc:
        result.warnings.append(f"could not look up the model package in {group}: {_describe_error(exc)}")
        result.model_package_arn = arn
        return
    if not arn:
        result.warnings.append(f"no model package of run {ctx.run_name} found in group {group}")
        return
    result.model_package_arn = arn
    result.approval_status = (description or {}).get("ModelApprovalStatus")


def _package_of_run(sm, group: str, run_name: str, newest: int = 50):
    """The newest package of the group whose metadata names this run."""
    token = None
    looked = 0
    while looked < newest:
        request = {"ModelPackageGroupName": group, "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 20}
        if token:
            request["NextToken"] = token
        page = sm.list_model_packages(**request)
        for summary in page.get("ModelPackageSummaryList", []):
            looked += 1
            description = sm.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
            if (description.get("CustomerMetadataProperties") or {}).get("RunName") == run_name:
                return summary["ModelPackageArn"], description
        token = page.get("NextToken")
        if not token:
            break
    return None, None
