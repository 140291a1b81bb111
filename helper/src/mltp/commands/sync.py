"""`mltp sync`: upload the code bundle unless its content-addressed prefix is complete."""

from typing import Optional

from ..invocation import Invocation
from .validate import Validated, validate


def sync(inv: Invocation, clients, checked: Optional[Validated] = None, bundle=None, preflight: bool = True):
    """The Deploy stage starts here, so this runs the preflight first unless told
    not to. `checked`: the repo validated already (run, publish); `bundle`: hashed already."""
    from .. import sync as sync_mod

    if checked is None:
        checked = validate(inv)
    if preflight:
        from .preflight import preflight as run_preflight

        run_preflight(inv, clients)
    return sync_mod.sync(checked.config, clients, checked.files, bundle=bundle,
                         state_machine=checked.context.state_machine)
