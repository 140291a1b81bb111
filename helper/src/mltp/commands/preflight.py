"""`mltp preflight`: read-only checks of the account; exit 5 when one fails.
The Deploy stage starts with it (sync, publish and run call it first)."""

from ..invocation import Invocation

# Preflight asks once and moves on: an emulator without an API answers 500, which
# the default retries would repeat for a minute.
PREFLIGHT_ATTEMPTS = 2


def preflight(inv: Invocation, clients):
    """Each check's line goes out as it is known; a failed check raises AwsRefused (exit 5)."""
    from .. import preflight as preflight_mod
    from ..errors import AwsRefused

    checks = preflight_mod.preflight(inv.config, clients.with_attempts(PREFLIGHT_ATTEMPTS),
                                     branch_build=not inv.run.register)
    for check in checks:
        inv.echo(f"preflight: {check.line()}")
    failed = [check.text for check in checks if check.status == preflight_mod.FAILED]
    if failed:
        raise AwsRefused(f"preflight: {len(failed)} check{'s' if len(failed) != 1 else ''} failed "
                         "(skip with --no-preflight)", failed)
    return checks
