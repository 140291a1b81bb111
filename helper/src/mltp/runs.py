"""Runs (Step Functions executions): find, start and stop them by run name.

A run is addressed by state machine and run name alone, so `wait` and `stop` in
a later process (another Jenkins step, an aborted build's cleanup) find it
without listing executions or passing files around: the execution ARN is the
state machine ARN with ':stateMachine:' turned into ':execution:' plus
':<run name>'. Starting is idempotent per run name (docs/contract.md, 6.4): a retried or
resumed build re-attaches to its execution instead of starting a second one.
"""

import json
from dataclasses import dataclass
from typing import Optional

import botocore.exceptions

from . import bundle as bundle_mod
from . import naming
from . import sync as sync_mod
from .aws import Clients, error_code, refused
from .context import RunContext
from .errors import AwsRefused, InvalidInput
from .naming import ExecutionInput

ABORT_ERROR = "mltp.Aborted"
ABORT_CAUSE = "stopped by mltp stop (build aborted)"
_MISSING = ("ExecutionDoesNotExist", "StateMachineDoesNotExist", "ResourceNotFound")


@dataclass(frozen=True)
class StartResult:
    execution_arn: str
    attached: bool  # True: the run existed already and was not started again
    input: ExecutionInput  # the execution's input (the existing one's when attached)
    status: str = "RUNNING"
    note: str = ""

    def summary(self) -> str:
        if self.attached:
            line = f"start: re-attached to {self.execution_arn} ({self.status})"
        else:
            line = f"start: started {self.execution_arn}"
        return f"{line}; {self.note}" if self.note else line


@dataclass(frozen=True)
class StopResult:
    execution_arn: str
    status: str  # before stopping; "" when there is no such execution
    stopped: bool

    def summary(self) -> str:
        if self.stopped:
            return f"stop: stopped {self.execution_arn} ({ABORT_ERROR})"
        if not self.status:
            return f"stop: nothing to stop, no execution {self.execution_arn}"
        return f"stop: nothing to stop, {self.execution_arn} is {self.status}"


def state_machine_arn(ctx: RunContext, clients: Clients) -> str:
    """Built, not looked up: partition from botocore's data for the region,
    account from STS (the caller's: where create_state_machine puts it), else
    from the Step Functions role, which must live in that same account."""
    account = clients.account_id() or ctx.config.aws.states_role_arn.split(":")[4]
    partition = clients.sfn.meta.partition
    return f"arn:{partition}:states:{ctx.region}:{account}:stateMachine:{ctx.state_machine}"


def execution_arn_for(machine_arn: str, run: str) -> str:
    head = machine_arn.replace(":stateMachine:", ":execution:", 1)
    return f"{head}:{run}"


def execution_arn(ctx: RunContext, clients: Clients) -> str:
    """The run's execution ARN, whether or not it exists (no Step Functions call)."""
    return execution_arn_for(state_machine_arn(ctx, clients), ctx.run_name)


def _or_none(call, **kwargs) -> Optional[dict]:
    """The call's answer, or None when what it describes does not exist. Callers wrap refused()."""
    try:
        return call(**kwargs)
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) in _MISSING:
            return None
        raise


def describe_state_machine(clients: Clients, arn: str) -> Optional[dict]:
    return _or_none(clients.sfn.describe_state_machine, stateMachineArn=arn)


def describe_execution(clients: Clients, arn: str) -> Optional[dict]:
    return _or_none(clients.sfn.describe_execution, executionArn=arn)


def _attached(arn: str, existing: dict, ours: ExecutionInput) -> StartResult:
    try:
        theirs = ExecutionInput(**json.loads(existing.get("input") or "{}"))
    except (TypeError, ValueError):  # started by another mltp version: keep ours
        theirs = ours
    note = ""
    if theirs.CodeS3Uri != ours.CodeS3Uri:
        note = f"note: it runs the code at {theirs.CodeS3Uri}, not the current {ours.CodeS3Uri}"
    return StartResult(arn, True, theirs, existing.get("status", ""), note)


def start(ctx: RunContext, clients: Clients, code: bundle_mod.Bundle, champion: Optional[dict] = None,
          overrides: Optional[dict] = None) -> StartResult:
    """Start the run named ctx.run_name on the code bundle `code`, or re-attach to it.

    Needs the state machine deployed and the code prefix verified against the
    bundle (every object, see sync.verify); otherwise says which command to run
    first (exit 2). Code that does not verify is never started."""
    config = ctx.config
    ours = naming.execution_input(
        config, ctx.state_machine, ctx.run_name, code.content_hash, register=ctx.register,
        git_commit=ctx.git_commit, build_url=ctx.build_url, branch=ctx.branch, champion=champion,
    )
    if overrides:  # the step cache's decisions (plan.Plan.input_overrides)
        from dataclasses import replace

        ours = replace(ours, **overrides)
    with refused("start run", f"{ctx.run_name} on {ctx.state_machine}"):
        machine = describe_state_machine(clients, state_machine_arn(ctx, clients))
        if machine is None:
            raise InvalidInput(
                f"state machine {ctx.state_machine} does not exist in {ctx.region}: run `mltp deploy` first"
            )
        arn = execution_arn_for(machine["stateMachineArn"], ctx.run_name)
        existing = describe_execution(clients, arn)
        if existing is not None:
            return _attached(arn, existing, ours)
        sync_mod.require_verified(config, clients, code, ctx.state_machine)
        body = json.dumps(ours.to_dict(), sort_keys=True)
        try:
            started = clients.sfn.start_execution(stateMachineArn=machine["stateMachineArn"],
                                                  name=ctx.run_name, input=body)
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) != "ExecutionAlreadyExists":
                raise
            existing = describe_execution(clients, arn)  # started by a concurrent build
            if existing is None:
                raise AwsRefused(f"start run {ctx.run_name}: exists but cannot be described")
            return _attached(arn, existing, ours)
    return StartResult(started["executionArn"], False, ours)


def stop_run(ctx: RunContext, clients: Clients, cause: str = ABORT_CAUSE) -> StopResult:
    """Stop the run if it is RUNNING; anything else is reported, not an error,
    so an aborted build can call this blindly."""
    arn = execution_arn(ctx, clients)
    with refused("stop run", arn):
        current = describe_execution(clients, arn)
        if current is None:
            return StopResult(arn, "", False)
        status = current.get("status", "")
        if status != "RUNNING":
            return StopResult(arn, status, False)
        try:
            clients.sfn.stop_execution(executionArn=arn, error=ABORT_ERROR, cause=cause[:32768])
        except botocore.exceptions.ClientError as exc:
            if error_code(exc) not in _MISSING:
                raise
            return StopResult(arn, "", False)
    return StopResult(arn, status, True)


def stop(ctx: RunContext, clients: Clients, cause: str = ABORT_CAUSE) -> Optional[str]:
    """Stop the run if it is RUNNING: the execution ARN when stopped, else None.
    Raises AwsRefused only when AWS refuses or cannot be reached."""
    result = stop_run(ctx, clients, cause)
    return result.execution_arn if result.stopped else None
