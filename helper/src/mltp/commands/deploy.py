"""`mltp deploy`: create or update the state machine (created, updated or unchanged)."""

from typing import Optional

from ..invocation import Invocation
from .validate import Validated, validate


def deploy(inv: Invocation, clients, checked: Optional[Validated] = None):
    from .. import deploy as deploy_mod

    if checked is None:
        checked = validate(inv)
    return deploy_mod.deploy(checked.context, clients)
