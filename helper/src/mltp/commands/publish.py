"""`mltp publish`: sync then deploy in one process, the Jenkins step's Deploy stage.

The repo is validated and hashed once, and the helper starts once (about half
the time of two processes); a failure still names the part that failed
(sync: / deploy:)."""

from ..invocation import Invocation
from .deploy import deploy
from .sync import sync
from .validate import validate


def publish(inv: Invocation, clients, preflight: bool = True):
    """The sync's line goes out when it is done; returns the deploy's result."""
    checked = validate(inv)
    inv.echo(sync(inv, clients, checked, preflight=preflight).summary())
    return deploy(inv, clients, checked)
