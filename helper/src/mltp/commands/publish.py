"""`mltp publish`: sync then deploy in one process, the Jenkins step's Deploy stage.

The repo is validated and hashed once, and the helper starts once (about half
the time of two processes); a failure still names the part that failed
(sync: / deploy:)."""

from ..invocation import Invocation
from .deploy import deploy
from .sync import sync
from .validate import validate


def publish(inv: Invocation, clients, preflight="auto"):
    """The sync's line goes out when it is done; returns the deploy's result.
    `preflight`: auto, always or never (preflight.preflight_for_build)."""
    from .preflight import after_deploy, forgetting_on_failure, preflight_for_build

    checked = validate(inv)
    done = preflight_for_build(inv, clients, preflight)
    with forgetting_on_failure(inv, clients, active=done is not None):
        inv.echo(sync(inv, clients, checked, preflight="never").summary())
        deployed = deploy(inv, clients, checked)
        after_deploy(inv, clients, done, deployed)
    return deployed
