"""`mltp stop`: stop the run if it is running; anything else exits 0 with a message.

Needs the config only, without the repo checks: an aborted build calls this
blindly, and a broken script must not keep its run going."""

from ..invocation import Invocation


def stop(inv: Invocation, clients):
    from .. import runs

    return runs.stop_run(inv.run, clients)
