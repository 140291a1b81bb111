"""`mltp run`: validate -> sync -> deploy -> start -> wait (docs/contract.md, 9.1).

The CLI chooses where (real AWS, or the local emulator with --local) and hands
the clients down; this is the same path for both, on one validated repo
(validated once, hashed once) and one invocation (the config read once)."""

from typing import Optional

from ..invocation import Invocation
from .deploy import deploy
from .start import start
from .sync import sync
from .validate import Validated, validate
from .wait import wait


def run(inv: Invocation, clients, checked: Optional[Validated] = None, timeout: Optional[float] = None,
        no_wait: bool = False, preflight="auto", poll_seconds: Optional[float] = None, clock=None):
    """Each step's line goes to `inv.echo` when it is done; returns wait's
    Outcome, or None with `no_wait` (once the run has started). `preflight`:
    auto, always or never (preflight.preflight_for_build); `poll_seconds` and
    `clock`: how wait follows the run (a local run's, local.session.local_run)."""
    from .. import bundle as bundle_mod
    from .preflight import after_deploy, forgetting_on_failure, preflight_for_build

    if checked is None:
        checked = validate(inv)
    done = preflight_for_build(inv, clients, preflight)
    bundle = bundle_mod.make(checked.files)
    with forgetting_on_failure(inv, clients, active=done is not None):
        inv.echo(sync(inv, clients, checked, bundle, preflight="never").summary())
        deployed = deploy(inv, clients, checked)
        inv.echo(deployed.summary())
        after_deploy(inv, clients, done, deployed)
        for line in start(inv, clients, checked, bundle).lines():
            inv.echo(line)
        if no_wait:
            return None
        # One run name for every step (the invocation's): outside Jenkins the
        # default is a timestamp, which must not change between start and wait.
        return wait(inv, clients, timeout=timeout, poll_seconds=poll_seconds, clock=clock)
