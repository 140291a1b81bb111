"""Checks a cached mltp helper virtualenv before a build uses it.

install.sh runs this with the agent's interpreter in isolated mode (-I), never
with the cached venv's own Python: code that may have been changed must not be
the code that judges it. Usage:

    python3 -I verify-helper.py VENV [WHEEL]

With WHEEL (the bundled wheel the step has in hand) the helper's files are
checked against the hashes in the wheel's RECORD; without it (a pip-spec
install) against the RECORD pip wrote, which catches corruption but not a
deliberate edit. Also checked:
- bin/mltp is the launcher pip writes for this venv's Python;
- every compiled module (__pycache__) Python would load instead of a helper
  source is that source compiled;
- interpreter start-up hooks (*.pth files, sitecustomize, usercustomize) in
  site-packages are ones an installed distribution lists, with their hashes.

Prints one line naming the first problem and exits 1, or prints nothing and
exits 0. Standard library only; runs on Python 3.9 and later.
"""

import base64
import csv
import glob
import hashlib
import io
import marshal
import os
import sys
import zipfile


class Problem(Exception):
    pass


def _digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return "sha256=" + base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()


def _rows(text):
    """(path, hash) of a RECORD; rows without a hash (RECORD itself, .pyc) are skipped."""
    for row in csv.reader(io.StringIO(text)):
        if len(row) >= 2 and row[1]:
            yield row[0], row[1]


def _site_packages(venv):
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages"))
    if len(found) != 1:
        raise Problem("it has no single lib/python3.*/site-packages")
    return found[0]


def _dist_info(site):
    found = glob.glob(os.path.join(site, "mltp-*.dist-info"))
    if len(found) != 1:
        raise Problem("the mltp distribution is missing or installed twice")
    return found[0]


def _wheel_record(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/RECORD") and n.count("/") == 1]
        if len(names) != 1:
            raise Problem(f"the wheel {wheel} has no RECORD")
        return archive.read(names[0]).decode("utf-8")


def check_files(site, record, include_dist_info):
    for path, expected in _rows(record):
        if path.split("/")[0].endswith(".dist-info") and not include_dist_info:
            continue  # pip rewrites RECORD and adds INSTALLER; the code is what matters
        if path.startswith("../") or os.path.isabs(path):
            continue  # scripts outside site-packages: check_launcher
        full = os.path.join(site, *path.split("/"))
        if not os.path.isfile(full):
            raise Problem(f"{path} is missing")
        if _digest(full) != expected:
            raise Problem(f"{path} differs from the helper that was installed")


def check_launcher(venv):
    """pip's console-script template: the venv's python and mltp.cli:main, nothing else.
    Where the venv's path makes the `#!` line longer than the kernel takes (127
    bytes), pip writes `#!/bin/sh` and a line that execs the venv's python
    instead: the same launcher, so that form passes too, its python checked alike."""
    path = os.path.join(venv, "bin", "mltp")
    with open(path, "rb") as handle:
        lines = handle.read().decode("utf-8", "replace").splitlines()
    if _sh_launcher_python(lines).endswith("/bin/python"):
        body = lines[3:]
    elif lines and lines[0].startswith("#!") and lines[0].rstrip().endswith("/bin/python"):
        body = lines[1:]
    else:
        raise Problem("bin/mltp does not start the venv's python")
    code = [line for line in body if line.strip() and not line.startswith("#")]
    allowed = {
        "import re", "import sys", "from mltp.cli import main", "if __name__ == '__main__':",
        "if __name__ == \"__main__\":",
        "sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])",
        "sys.exit(main())",
    }
    unexpected = [line.strip() for line in code if line.strip() not in allowed]
    if unexpected:
        raise Problem(f"bin/mltp runs unexpected code: {unexpected[0][:60]}")


def _sh_launcher_python(lines):
    """The python that pip's long-path form execs (`#!/bin/sh`, then
    `'''exec' PYTHON "$0" "$@"`, then `' '''`), or "" for any other first lines."""
    if len(lines) < 3 or lines[0].rstrip() != "#!/bin/sh" or lines[2].strip() != "' '''":
        return ""
    head, tail = "'''exec' ", ' "$0" "$@"'
    line = lines[1].strip()
    if not (line.startswith(head) and line.endswith(tail)):
        return ""
    python = line[len(head):-len(tail)]
    if python.startswith('"') and python.endswith('"') and len(python) > 1:
        python = python[1:-1]
    return "" if any(c in python for c in "\"'$`;&|<>\\") else python


def check_compiled(site):
    """A stale or planted .pyc whose header matches its source would run instead
    of it: compare the code objects (marshal bytes are not reproducible)."""
    package = os.path.join(site, "mltp")
    tag = sys.implementation.cache_tag
    for root, _dirs, files in os.walk(package):
        if os.path.basename(root) != "__pycache__":
            continue
        for name in files:
            if not name.endswith(".pyc"):
                continue
            module, _, rest = name.partition(".")
            source = os.path.join(os.path.dirname(root), module + ".py")
            pyc = os.path.join(root, name)
            if rest != tag + ".pyc":
                continue  # another interpreter's cache: never loaded by this one
            if not os.path.isfile(source):
                raise Problem(f"{os.path.relpath(pyc, site)} has no source")
            with open(pyc, "rb") as handle:
                data = handle.read()
            flags = int.from_bytes(data[4:8], "little")
            stat = os.stat(source)
            if flags == 0:
                mtime = int.from_bytes(data[8:12], "little")
                size = int.from_bytes(data[12:16], "little")
                if mtime != int(stat.st_mtime) & 0xFFFFFFFF or size != stat.st_size & 0xFFFFFFFF:
                    continue  # Python sees it is stale and compiles the source instead
            with open(source, "rb") as handle:
                compiled = compile(handle.read(), source, "exec", dont_inherit=True)
            try:
                cached = marshal.loads(data[16:])
            except (EOFError, ValueError, TypeError):
                raise Problem(f"{os.path.relpath(pyc, site)} is corrupt")
            if cached != compiled:
                raise Problem(f"{os.path.relpath(pyc, site)} is not its source compiled")


def check_startup_hooks(site):
    """Code that runs whenever the venv's Python starts must come from an installed distribution."""
    listed = {}
    for record in glob.glob(os.path.join(site, "*.dist-info", "RECORD")):
        with open(record, encoding="utf-8") as handle:
            for path, expected in _rows(handle.read()):
                listed[path] = expected
    hooks = [n for n in os.listdir(site) if n.endswith(".pth") or n in ("sitecustomize.py", "usercustomize.py")]
    for name in sorted(hooks):
        if name not in listed:
            raise Problem(f"site-packages/{name} belongs to no installed package")
        if _digest(os.path.join(site, name)) != listed[name]:
            raise Problem(f"site-packages/{name} differs from its package's RECORD")


def verify(venv, wheel=None):
    site = _site_packages(venv)
    if wheel:
        check_files(site, _wheel_record(wheel), include_dist_info=False)
    else:
        with open(os.path.join(_dist_info(site), "RECORD"), encoding="utf-8") as handle:
            check_files(site, handle.read(), include_dist_info=False)
    _dist_info(site)
    check_launcher(venv)
    check_compiled(site)
    check_startup_hooks(site)


def main(argv):
    if len(argv) not in (2, 3):
        print("usage: verify-helper.py VENV [WHEEL]", file=sys.stderr)
        return 2
    try:
        verify(argv[1], argv[2] if len(argv) == 3 else None)
    except Problem as problem:
        print(problem)
        return 1
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile, csv.Error) as exc:
        print(f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
