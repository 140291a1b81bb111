"""The process environment of a local job: what a SageMaker container would give it.

On SageMaker a job's container gets the job role's credentials and the
region, so a script that calls AWS itself (boto3.resource("s3") downloading
the object its arguments name, say) reaches the account's S3. Locally the
account is the run's emulator: the job gets the emulator's endpoint
(`AWS_ENDPOINT_URL`, honoured by botocore 1.31 / boto3 1.28 and later), its
dummy credentials (a key id of the jobs' own, which the emulator answers
for what the job role may call on AWS only: job_access) and the config's
region, and nothing of the agent's own AWS setup: every `AWS_*` variable of the agent is dropped (keys, session tokens,
profiles, web identity and container credential variables) and the config and
credentials files point at nothing, so no credential chain inside the job ends
at the agent's real account. The instance metadata service is switched off for
botocore too (an agent on EC2 would otherwise lend its instance role).

Python's own search path is the container's: none of the agent's
`PYTHONPATH`, `PYTHONHOME`, `PYTHONSTARTUP`, `PYTHONUSERBASE` or virtualenv
variables, and mltp's own virtualenv is not on `PATH`; the step's interpreter
folder comes first on `PATH`, as the container's Python is on its `PATH`. In
training the toolkit then sets `PYTHONPATH` to its own `sys.path` (the code
folder first), as it does on SageMaker; processing jobs get no `PYTHONPATH`,
as SageMaker's framework images set none.

Training jobs also get `TRAINING_JOB_NAME`, which SageMaker sets in a training
container and the toolkit reads for `SM_TRAINING_ENV`'s `job_name`.
"""

import os
import sys
from typing import Dict, Iterable, Mapping, Optional

# The emulator accepts any key; these say where they come from. mltp's own
# process uses the first; jobs sign with theirs, which the emulator answers
# for S3, STS and CloudWatch only (job_access).
EMULATOR_KEY_ID = "mltp-local"
EMULATOR_SECRET = "mltp-local"
JOB_KEY_ID = "mltp-local-job"

# Where botocore finds credentials other than the keys: what mltp's own process
# drops before the emulator starts (session._local_credentials); jobs drop every AWS_*.
CREDENTIAL_SOURCES = (
    "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
)

# Dropped by prefix: the agent's AWS setup, mltp's own settings, SageMaker's
# variables of an enclosing job (the toolkit sets the job's own).
DROPPED_PREFIXES = ("AWS_", "MLTP_", "SM_")
# Dropped by name: what changes where Python finds modules, or whose AWS
# settings an old SDK would read, or names a job that is not this one.
DROPPED = frozenset({
    "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "PYTHONEXECUTABLE", "PYTHONSAFEPATH",
    "VIRTUAL_ENV", "VIRTUAL_ENV_PROMPT", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "__PYVENV_LAUNCHER__",
    "BOTO_CONFIG", "TRAINING_JOB_NAME", "TRAINING_JOB_ARN", "PROCESSING_JOB_NAME",
})


def aws_variables(endpoint: str, region: str) -> Dict[str, str]:
    """The AWS a local job talks to: its run's emulator, in the config's region."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": JOB_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": EMULATOR_SECRET,
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # No profile, config or credentials file of the agent's is read.
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


def job_environment(inherited: Mapping[str, str], python: str, endpoint: Optional[str], region: Optional[str],
                    training_job: Optional[str] = None) -> Dict[str, str]:
    """The environment a local job starts with, before the step's own
    variables: `inherited` (the agent's) without what section 8.2 of the
    contract says a job never sees, `python`'s folder first on PATH, the
    emulator as its AWS (when `endpoint` is given) and, for a training job,
    TRAINING_JOB_NAME."""
    env = {k: v for k, v in inherited.items() if not k.startswith(DROPPED_PREFIXES) and k not in DROPPED}
    env["PATH"] = _path(inherited.get("PATH", os.defpath), python, inherited.get("VIRTUAL_ENV"))
    if endpoint:
        env.update(aws_variables(endpoint, region or "us-east-1"))
    if training_job:
        env["TRAINING_JOB_NAME"] = training_job
    return env


def _path(path: str, python: str, virtual_env: Optional[str]) -> str:
    """PATH with the job's interpreter folder first and mltp's own virtualenv
    (the one this process runs from, or the one activated) left out."""
    job_bin = os.path.dirname(python)
    own = set()
    if sys.prefix != getattr(sys, "base_prefix", sys.prefix):
        own.add(os.path.realpath(os.path.join(sys.prefix, "bin")))
    if virtual_env:
        own.add(os.path.realpath(os.path.join(virtual_env, "bin")))
    own.discard(os.path.realpath(job_bin))
    kept = [job_bin]
    for entry in path.split(os.pathsep):
        if entry and entry not in kept and os.path.realpath(entry) not in own:
            kept.append(entry)
    return os.pathsep.join(kept)


# botocore reads AWS_ENDPOINT_URL from this release on (boto3 1.28).
ENDPOINT_BOTOCORE = (1, 31)


def botocore_version(env) -> Optional[str]:
    """The botocore a job of `env` (envs.Environment) imports, from the
    distributions installed in it: its virtualenv first, then an overlay's
    interpreter's site-packages. None when it has none."""
    from pathlib import Path

    folders = sorted(Path(env.path).glob("lib/python*/site-packages")) + [Path(p) for p in env.protect]
    for folder in folders:
        for dist in sorted(folder.glob("botocore-*.dist-info")):
            return dist.name[len("botocore-"):-len(".dist-info")]
    return None


def old_sdk_notice(environments: Iterable) -> Optional[str]:
    """One line for the run's log when a step's environment has a botocore
    that ignores AWS_ENDPOINT_URL: a script's own boto3 calls would then go to
    real AWS with the emulator's dummy key (and be refused there)."""
    old = []
    for env in environments:
        version = botocore_version(env)
        if version and _release(version) < ENDPOINT_BOTOCORE and (env.named or env.python, version) not in old:
            old.append((env.named or env.python, version))
    if not old:
        return None
    which = ", ".join(f"{python} has botocore {version}" for python, version in old)
    return (f"local: {which}, which ignores AWS_ENDPOINT_URL: a script's own boto3 calls would go to real AWS "
            f"instead of the emulator (and be refused there); list boto3>=1.28 in requirements.txt")


def _release(version: str) -> tuple:
    parts = []
    for piece in version.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece else ""
        if not digits or digits != piece:
            parts.append(int(digits or 0))
            break
        parts.append(int(digits))
    return tuple(parts)
