"""`mltp wait`: follow the run to its end, print the gate table, write the report folder.

Needs the config only, without the repo checks: following a run needs nothing
from the scripts."""

from pathlib import Path
from typing import Optional

from ..config import display
from ..errors import MltpError
from ..invocation import Invocation
from ..keyvalue import write_lines


def wait(inv: Invocation, clients, timeout: Optional[float] = None, *, poll_seconds: Optional[float] = None,
         clock=None):
    """Returns the Outcome when the run passed; otherwise raises the error whose
    exit code tells what happened (GateFailed 3, RunFailed 4, AwsRefused 5).
    `poll_seconds` polls at that fixed interval (the local run); `clock` is for
    tests and the benchmark. Lines go to `inv.echo` as the run goes."""
    from .. import follow, history, report

    ctx, echo = inv.run, inv.echo
    policy = follow.DEFAULT_POLICY
    if poll_seconds:
        policy = follow.PollPolicy(initial=poll_seconds, factor=1.0, cap=poll_seconds)
    result = follow.follow(ctx, clients, timeout_minutes=timeout, clock=clock, echo=echo, policy=policy)
    if result.passed and result.model_package_arn:
        _record_checksum(clients, result)
    result.history = history.collect(ctx.config.registry.model_package_group, clients, result)
    for line in report.console_lines(result):
        echo(line)
    report.write(result, ctx.report_dir)
    write_approval_files(result, ctx.report_dir)
    echo(f"report: {display(ctx.report_dir)}")
    if not result.passed:  # a failure the preflight checks for: the next build runs it again
        from .preflight import forget_on_failure

        failure = result.failure
        forget_on_failure(inv, clients, " ".join(filter(None, [result.message, failure and failure.error,
                                                                failure and failure.reason])))
    result.raise_for_status()
    _record_good_run(inv, clients, result)
    return result


def _record_good_run(inv: Invocation, clients, result) -> None:
    """A passed default-branch run's code is what retraining runs next
    (`mltp trigger`); branch and pull-request builds record nothing."""
    ctx = inv.run
    if not ctx.register:
        return
    import json as json_mod

    from .. import runs, trigger

    with_input = runs.describe_execution(clients, result.execution_arn) if result.execution_arn else None
    execution_input = json_mod.loads((with_input or {}).get("input") or "{}")
    if not execution_input:
        return
    try:
        inv.echo(f"retrain code: {trigger.record_good_run(ctx, clients, execution_input)}")
    except MltpError as exc:  # the run passed: a missing permission here must not fail the build
        inv.echo(f"warning: retraining will not use this run's code: {exc.message}")


def _record_checksum(clients, result) -> None:
    """The SHA-256 of the registered model.tar.gz, recorded on the version so
    `fetch-model` can verify what it downloads."""
    from .. import registry
    from ..errors import AwsRefused

    try:
        result.model_sha256 = registry.record_checksum(clients, result.model_package_arn, result.model_copy)
    except AwsRefused as exc:
        result.warnings.append(f"could not record the model's SHA-256 on {result.model_package_name}: {exc.message}")


def write_approval_files(result, report_dir: Path) -> None:
    """For the Jenkins approval: registration.txt (key=value: the registered
    version and its status) and gate.txt (the gate and champion tables as printed)."""
    from .. import report

    report_dir = Path(report_dir)
    lines = report.console_lines(result)
    gate_text = [line for line in lines if line and not line.startswith(("model package:", "report:"))]
    (report_dir / "gate.txt").write_text("\n".join(gate_text) + "\n", encoding="utf-8")
    registration = report_dir / "registration.txt"
    if result.model_package_arn:
        name = result.model_package_name or ""
        write_lines(registration, (("model_package_arn", result.model_package_arn),
                                   ("group", name.rsplit("/", 1)[0]), ("version", name.rsplit("/", 1)[-1]),
                                   ("approval_status", result.approval_status or ""),
                                   ("sha256", result.model_sha256 or "")))
    elif registration.exists():
        registration.unlink()
