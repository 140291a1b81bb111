"""`mltp preflight`: read-only checks of the account; exit 5 when one fails.
The Deploy stage starts with it (sync, publish and run call it first), once per
change rather than once per build (preflight_cache.py, `--preflight`)."""

from contextlib import contextmanager
from typing import Iterator, Optional

from ..invocation import Invocation

# Preflight asks once and moves on: an emulator without an API answers 500, which
# the default retries would repeat for a minute.
PREFLIGHT_ATTEMPTS = 2

RAN, SKIPPED = "ran", "skipped"


def preflight(inv: Invocation, clients):
    """Each check's line goes out as it is known; a failed check raises AwsRefused
    (exit 5). A pass is remembered (preflight_cache.py) for the builds after it."""
    from .. import preflight as preflight_mod
    from .. import preflight_cache
    from ..errors import AwsRefused

    checks = preflight_mod.preflight(inv.config, clients.with_attempts(PREFLIGHT_ATTEMPTS),
                                     branch_build=not inv.run.register)
    for check in checks:
        inv.echo(f"preflight: {check.line()}")
    failed = [check.text for check in checks if check.status == preflight_mod.FAILED]
    if failed:
        preflight_cache.forget(clients.region, inv.run.state_machine)
        raise AwsRefused(f"preflight: {len(failed)} check{'s' if len(failed) != 1 else ''} failed "
                         "(skip with --no-preflight)", failed)
    preflight_cache.remember(_key(inv, clients))
    return checks


def _key(inv: Invocation, clients):
    from .. import preflight_cache

    return preflight_cache.key(inv.config, clients, inv.run.state_machine, inv.run.register)


def preflight_for_build(inv: Invocation, clients, mode="auto") -> Optional[str]:
    """What sync, publish and run do first. `mode` auto: run the preflight unless
    it passed for this key (account, region, identity, state machine, roles,
    config and mltp) within MLTP_PREFLIGHT_MAX_AGE hours, and then say so in one
    line; always: run it; never: nothing. Returns RAN, SKIPPED or None."""
    from .. import preflight_cache

    mode = {True: "auto", False: "never"}.get(mode, mode)  # the callers' older preflight=True/False
    if mode == "never":
        return None
    if mode == "auto":
        preflight_cache.max_age_seconds()  # a bad MLTP_PREFLIGHT_MAX_AGE fails (exit 2) before any AWS call
        ago = preflight_cache.passed_ago(_key(inv, clients))
        if ago is not None:
            inv.echo(f"preflight: skipped: passed {preflight_cache.age_text(ago)} ago for this account, identity, "
                     "config and roles (--preflight always runs it)")
            return SKIPPED
    preflight(inv, clients)
    return RAN


def after_deploy(inv: Invocation, clients, done: Optional[str], deployed) -> None:
    """A state machine created or updated gets its preflight even where a pass was
    remembered (someone changed or deleted it outside this build), before a run starts."""
    if done == SKIPPED and getattr(deployed, "outcome", None) in ("created", "updated"):
        inv.echo(f"preflight: the state machine was {deployed.outcome}: running it again")
        preflight(inv, clients)


def forget_on_failure(inv: Invocation, clients, text: Optional[str]) -> None:
    """A build that failed with an error the preflight checks for (a permission,
    a role, a quota) runs the preflight again next time: the remembered pass is dropped."""
    from .. import preflight_cache

    if preflight_cache.would_have_caught(text) and preflight_cache.forget(clients.region, inv.run.state_machine):
        inv.echo("preflight: the next build runs it again (this one failed with an error it checks for)")


@contextmanager
def forgetting_on_failure(inv: Invocation, clients, active: bool = True) -> Iterator[None]:
    """Around what a build does after its preflight: AWS refusing a call, or a run
    failing, with an error the preflight checks for drops the remembered pass.
    Not `active` (--preflight never, a local run): the cache is left alone."""
    from ..errors import AwsRefused, RunFailed

    try:
        yield
    except (AwsRefused, RunFailed) as exc:
        if active:
            forget_on_failure(inv, clients, "\n".join(exc.lines()))
        raise
