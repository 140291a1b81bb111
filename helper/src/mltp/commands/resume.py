"""`mltp resume`: go on from a failed run (docs/contract.md, 8.5).

validate, sync, deploy as `run` does; then either redrive the failed execution
(AWS, when nothing changed and Step Functions still can), or start a new run
that takes each step that succeeded in the failed run from it, when its key
still matches; then wait. The decisions are in mltp.resume."""

from dataclasses import replace
from typing import Optional

from ..invocation import Invocation
from .validate import Validated, validate


def resume(inv: Invocation, clients, checked: Optional[Validated] = None, source_run: Optional[str] = None,
           timeout: Optional[float] = None, preflight="auto", poll_seconds: Optional[float] = None, clock=None):
    """Returns wait's Outcome (or raises what wait raises). `preflight`: auto,
    always or never, and `poll_seconds`, `clock`: as for run (commands/run.py)."""
    from .. import bundle as bundle_mod
    from .. import resume as resume_mod
    from .. import runs
    from ..aws import refused
    from ..cache_index import now_utc
    from .deploy import deploy
    from .plan import make_plan
    from .start import start
    from .sync import sync
    from .wait import wait

    if checked is None:
        checked = validate(inv)
    from .preflight import preflight_for_build

    preflight_for_build(inv, clients, preflight)
    ctx = inv.run
    if inv.local:
        source = resume_mod.local_source(inv.repo, ctx.state_machine, source_run)
    else:
        with refused("resume: reading the failed run", source_run or f"the newest failed run of {ctx.state_machine}"):
            source = resume_mod.aws_source(clients, runs.state_machine_arn(ctx, clients), source_run)
    if source.run == ctx.run_name:
        raise_same(source.run)
    bundle = bundle_mod.make(checked.files)
    inv.echo(sync(inv, clients, checked, bundle, preflight="never").summary())
    inv.echo(deploy(inv, clients, checked).summary())
    found = make_plan(inv, clients, bundle)
    decision = resume_mod.decide(source, {s.role: s.key for s in found.steps}, found.cache_input())
    inv.echo(f"resume: from run {source.run}")
    if not inv.local and decision.unchanged:
        can, why = resume_mod.redrivable(source, now_utc())
        if can:
            arn = runs.execution_arn_for(runs.state_machine_arn(ctx, clients), source.run)
            with refused("RedriveExecution", arn):
                clients.sfn.redrive_execution(executionArn=arn)
            inv.echo(f"resume: nothing changed since {source.run}: redrove {arn} from the state that failed")
            return wait(replace(inv, run=replace(ctx, run_name=source.run)), clients, timeout=timeout,
                        poll_seconds=poll_seconds, clock=clock)
        inv.echo(f"resume: not redriving {source.run} ({why}): a new run takes what it can from it")
    for line in decision.lines:
        inv.echo(line)
    if inv.local:
        resume_mod.materialize_local(clients, inv.repo, source, decision.reuse)
    for line in start(inv, clients, checked, bundle, overrides=decision.overrides).lines():
        inv.echo(line)
    return wait(inv, clients, timeout=timeout, poll_seconds=poll_seconds, clock=clock)


def raise_same(run: str) -> None:
    from ..errors import InvalidInput

    raise InvalidInput(f"resume: the new run would be named {run}, as the run it resumes: give another --run-name")
