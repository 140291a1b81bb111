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
    result.warnings[:0] = list(getattr(clients, "notes", None) or ())  # said at the start of a local run
    if result.passed and result.model_package_arn:
        _record_checksum(clients, result)
    result.history = history.collect(ctx.config.registry.model_package_group, clients, result, rules=ctx.config.gate)
    from .. import costs

    result.cost = costs.collect(clients, ctx.region, result.steps, local=getattr(clients, "local", False))
    for line in report.console_lines(result):
        echo(line)
    report.write(result, ctx.report_dir)
    write_approval_files(result, ctx.report_dir)
    echo(f"report: {display(ctx.report_dir)}")
    _record_cache(inv, clients, result)
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


def _record_cache(inv: Invocation, clients, result) -> None:
    """The step cache (docs/contract.md, 8.4): a record for each step with
    cache: true that ran and succeeded in this run, whatever became of the rest
    (a run that missed its gate still trained a reusable model). A record that
    cannot be written costs a later run time, never this build its result."""
    import json as json_mod

    import botocore.exceptions

    from .. import cache_index, outcome, runs, step_cache

    ctx = inv.run
    try:
        described = runs.describe_execution(clients, result.execution_arn) if result.execution_arn else None
        execution_input = json_mod.loads((described or {}).get("input") or "{}")
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, ValueError):
        return
    cache = execution_input.get("Cache") if isinstance(execution_input, dict) else None
    if not isinstance(cache, dict) or not cache.get("cached") or not isinstance(cache.get("keys"), dict):
        return
    reused = cache.get("reuse") or {}
    cached = set(cache["cached"])
    succeeded = {s.name for s in result.steps if s.status == outcome.SUCCEEDED}
    roles = {state: role for role, state in step_cache.STATES.items()}
    if inv.local:
        index = cache_index.LocalIndex(ctx.config, ctx.state_machine, clients)
    else:
        index = cache_index.S3Index(clients, ctx.config, ctx.state_machine)
    for state, key in sorted(cache["keys"].items()):
        if state not in cached or state in reused or state not in succeeded or state not in roles:
            continue
        record = cache_index.record_for(ctx.config, ctx.state_machine, roles[state], str(key),
                                        dict((cache.get("parts") or {}).get(state) or {}), execution_input)
        try:
            where = index.write(record)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, MltpError, OSError) as exc:
            inv.echo(f"warning: the step cache will not reuse {state} of {record.run}: {exc}")
            continue
        inv.echo(f"cache: {state} kept for reuse ({where})")


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
