"""`mltp sync`: upload the code bundle unless its content-addressed prefix is complete."""

from typing import Optional

from ..invocation import Invocation
from .validate import Validated, validate


def sync(inv: Invocation, clients, checked: Optional[Validated] = None, bundle=None, preflight="auto"):
    """The Deploy stage starts here, so this runs the preflight first unless told
    not to (`preflight`: auto, always or never, as `--preflight`; True is auto,
    False never). `checked`: the repo validated already (run, publish); `bundle`: hashed already."""
    from .. import sync as sync_mod

    if checked is None:
        checked = validate(inv)
    from .preflight import preflight_for_build

    preflight_for_build(inv, clients, preflight)
    return sync_mod.sync(checked.config, clients, checked.files, bundle=bundle,
                         state_machine=checked.context.state_machine)
