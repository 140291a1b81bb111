"""The processing jobs' entry point: installs requirements.txt, then runs the script.

SageMaker's training toolkit installs a repo's requirements.txt before train.py
runs; for processing jobs SageMaker's FrameworkProcessor ships a small shell
entry point (runproc.sh) that does the same before `python script.py`. mltp's
processing jobs run this file instead, shipped in every code bundle as
`.mltp/processing_entry.py`:

    python3 .mltp/processing_entry.py preprocessing.py [args]
    python3 .mltp/processing_entry.py .mltp/evaluation_guard.py evaluation.py [args]

If the code folder (the parent of `.mltp/`) holds a requirements.txt it is
installed with `python3 -m pip install -r requirements.txt`; a failed install
fails the job with one line naming requirements.txt and pip's reason. Then the
rest of the command replaces this process (os.execv), so the script, or the
evaluation guard wrapping evaluation.py, runs exactly as before.

A local run executes this very command; its environment (local/envs.py)
already holds requirements.txt, which it says by setting
MLTP_REQUIREMENTS_INSTALLED to the file's sha256, so the install is skipped
only when the file is byte for byte the one installed. It runs inside
SageMaker's framework containers: Python 3.6+, stdlib only.
"""

import hashlib
import os
import subprocess
import sys

SHIPPED_AS = ".mltp/processing_entry.py"
REQUIREMENTS = "requirements.txt"


def refuse(message):
    sys.stderr.write("mltp: " + message + "\n")
    sys.stderr.flush()
    sys.exit(1)


def pip_reason(output):
    lines = [line.strip() for line in output.splitlines() if line.strip() and not line.startswith("WARNING")]
    errors = [line for line in lines if line.startswith("ERROR:")]
    return (errors or lines or ["no output"])[-1]


def install_requirements(code_dir):
    path = os.path.join(code_dir, REQUIREMENTS)
    if not os.path.isfile(path):
        return
    with open(path, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    if os.environ.get("MLTP_REQUIREMENTS_INSTALLED") == digest:
        print("mltp: requirements.txt is installed already (sha256 %s)" % digest[:12])
        return
    print("mltp: installing requirements.txt")
    sys.stdout.flush()
    proc = subprocess.Popen([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
                             "-r", REQUIREMENTS], cwd=code_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = proc.communicate()[0].decode("utf-8", "replace")
    sys.stdout.write(output)
    sys.stdout.flush()
    if proc.returncode != 0:
        refuse("requirements.txt failed to install (pip exited with code %d: %s)" % (proc.returncode, pip_reason(output)))


def main(argv):
    if len(argv) < 2:
        refuse("usage: processing_entry.py SCRIPT [ARGS...]")
    install_requirements(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable] + argv[1:])


if __name__ == "__main__":
    main(sys.argv)
