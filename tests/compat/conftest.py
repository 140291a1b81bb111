"""The compatibility test says which interpreters it covered, at the end of the
run's summary: with parallel workers (pytest-xdist) a test's own output is not
shown, and the summary is printed by the process that reports."""

from tests.compat import pythons


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not any(str(arg).rstrip("/").endswith("compat") or "tests/compat" in str(arg) for arg in config.args):
        return
    found = pythons.find()
    terminalreporter.write_line(f"compat: interpreters found: {', '.join(f'{v} ({p})' for v, p in found.items()) or 'none'}")
    missing = [v for v in pythons.VERSIONS if v not in found]
    if missing:
        terminalreporter.write_line(f"compat: not on this machine: {', '.join(missing)}")
