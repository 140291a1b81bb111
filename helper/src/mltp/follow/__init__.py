"""`mltp wait`: follow one execution to its end and say what became of it.

Three parts: watching (the clock, the backoff, the history reader and tracker,
the polling loop), conclusion (the status, the gate's values, the model
package) and diagnosis (why a failed run failed, from its job and log). This
module puts them together in `follow`, and keeps their names importable from
`mltp.follow` as before.
"""

from datetime import datetime, timezone
from typing import Any, Dict, Optional

import click

from .. import outcome as out
from ..aws import Clients, refused
from ..context import RunContext
from ..jobs import JOB_STATES, LOG_GROUPS
from .conclusion import _conclude, _end_time, _final_poll, _with_unrun_jobs
from .diagnosis import LOG_TAIL_LINES, _died_of, _failure
from .links import console_links, execution_link, job_link, job_log_link, log_link
from .watching import (DEFAULT_POLICY, FINAL_STATUSES, GATE_ERROR, TERMINAL_EVENTS, USER_STATES, Backoff, Echo,
                       HistoryReader, ManualClock, PollPolicy, SystemClock, Tracker, Watcher, _json, is_transient,
                       jobs_from_input)

# What callers (wait, logs, the benchmark, the tests) use by the name mltp.follow.X.
__all__ = ["follow", "DEFAULT_POLICY", "FINAL_STATUSES", "GATE_ERROR", "JOB_STATES", "LOG_GROUPS", "LOG_TAIL_LINES",
           "TERMINAL_EVENTS", "USER_STATES", "Backoff", "Echo", "HistoryReader", "ManualClock", "PollPolicy",
           "SystemClock", "Tracker", "Watcher", "console_links", "execution_link", "is_transient", "job_link",
           "job_log_link", "jobs_from_input", "log_link", "_died_of"]


# --------------------------------------------------------------------------- follow


def follow(ctx: RunContext, clients: Clients, timeout_minutes: Optional[float] = None, clock=None,
           echo: Echo = click.echo, policy: PollPolicy = DEFAULT_POLICY) -> out.Outcome:
    """Follow the run of `ctx` to its end; the Outcome says how it ended.

    On timeout or interrupt (Ctrl-C, SIGTERM) the execution is stopped first.
    Raises AwsRefused when the execution cannot be found or read."""
    from .. import runs

    clock = clock or SystemClock()
    with refused("DescribeExecution", f"{ctx.state_machine}/{ctx.run_name}"):
        arn = runs.execution_arn(ctx, clients)
    with refused("DescribeExecution", arn):
        description = clients.sfn.describe_execution(executionArn=arn)
    execution_input = _json(description.get("input")) or {}
    if not isinstance(execution_input, dict):
        execution_input = {}
    links = console_links(ctx)
    tracker = Tracker(ctx.region, jobs_from_input(execution_input), ctx.config.gate, links=links)
    tracker.started = description.get("startDate")
    cache = execution_input.get("Cache")
    reuse = cache.get("reuse") if isinstance(cache, dict) else None
    tracker.reused = {str(k): str(v) for k, v in reuse.items()} if isinstance(reuse, dict) else {}
    from_default = cache.get("from_default") if isinstance(cache, dict) else None
    tracker.from_default = {str(s) for s in from_default} if isinstance(from_default, list) else set()
    echo(f"following {ctx.state_machine} run {ctx.run_name}" + (f": {execution_link(ctx.region, arn)}" if links else ""))

    watcher = Watcher(clients.sfn, arn, tracker, clock, echo, policy)
    deadline = clock.now() + timeout_minutes * 60 if timeout_minutes else None
    stop = None  # (status, why): wait stops the run
    try:
        if not watcher.run(deadline):
            stop = (out.TIMED_OUT, f"timed out after {timeout_minutes:g} min")
    except KeyboardInterrupt:
        stop = (out.STOPPED, "build aborted")

    result = _new_outcome(ctx, arn, execution_input, tracker)
    if stop:
        status, why = stop
        echo(f"stopping the execution: {why}")
        with refused("StopExecution", arn):
            stopped = runs.stop(ctx, clients, cause=f"mltp wait: {why}")
        _final_poll(watcher, result)
        if not stopped and tracker.terminal:
            stop = None  # it ended on its own meanwhile: report that
    if stop:
        for line in tracker.close(out.STEP_STOPPED, datetime.now(timezone.utc)):
            echo(line)
        result.execution_status = "ABORTED"
        result.status = status
        result.message = why if status == out.TIMED_OUT else f"stopped: {why}"
        result.failure = _failure(ctx, clients, tracker, why, None, result)
    else:
        _conclude(ctx, clients, tracker, arn, execution_input, result)
    result.started = tracker.started
    result.ended = result.ended or _end_time(tracker)
    result.steps = _with_unrun_jobs(tracker)
    return result


def _new_outcome(ctx: RunContext, arn: str, execution_input: Dict[str, Any], tracker: Tracker) -> out.Outcome:
    register = execution_input.get("Register")
    return out.Outcome(
        status=out.FAILED,
        model=ctx.config.name,
        state_machine=ctx.state_machine,
        run_name=ctx.run_name,
        execution_arn=arn,
        region=ctx.region,
        branch=execution_input.get("Branch") or ctx.branch or _git_branch(ctx),
        commit=_known(execution_input.get("GitCommit")) or ctx.git_commit,
        build_url=_known(execution_input.get("BuildUrl")) or ctx.build_url,
        register=bool(register) if register is not None else ctx.register,
        execution_link=execution_link(ctx.region, arn) if console_links(ctx) else None,
        gate=[out.GateCheck(r.metric, r.describe()) for r in ctx.config.gate],
    )


def _known(value: Any) -> str:
    """The execution input says 'unknown' where CreateModelPackage needed a value."""
    return "" if not value or value == "unknown" else str(value)


def _git_branch(ctx: RunContext) -> str:
    """Outside Jenkins (no BRANCH_NAME), the branch checked out in the repo, for the report."""
    import subprocess

    try:
        found = subprocess.run(["git", "-C", str(ctx.config.repo), "rev-parse", "--abbrev-ref", "HEAD"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    name = found.stdout.strip() if found.returncode == 0 else ""
    return "" if name == "HEAD" else name
