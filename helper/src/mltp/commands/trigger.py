"""`mltp trigger install|remove|status|policy`: retraining when new data lands.

Config only, no repo checks (the trigger runs the last good run's code, not
the working tree's)."""

from typing import List, Optional

from ..invocation import Invocation


def install(inv: Invocation, clients, role_arn: Optional[str] = None):
    from .. import trigger as trigger_mod

    return trigger_mod.install(inv.run, clients, role_arn=role_arn)


def remove(inv: Invocation, clients):
    from .. import trigger as trigger_mod

    return trigger_mod.remove(inv.run, clients)


def status(inv: Invocation, clients) -> List[str]:
    from .. import trigger as trigger_mod

    return trigger_mod.status(inv.run, clients)


def policy(inv: Invocation, clients) -> str:
    from .. import trigger as trigger_mod

    return trigger_mod.policy_document(inv.run, clients)
