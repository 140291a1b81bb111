"""The AWS side of the parity suite (test_parity.py), run as its own process:
`python parity_aws.py REPO RUN_NAME` prints {"exit_code", "error"} as JSON.

It runs what `mltp run REPO` runs on AWS (validate, sync, deploy, start, wait:
`commands.run.run` with clients of its own, not the local session) against moto in server mode, whose
Step Functions interpreter executes the rendered definition. SageMaker's jobs
are executed by a stand-in that runs each job's own request (its container
entrypoint or script-mode program, on the code synced to S3) and reports a
failure the way SageMaker does, not the way the local runner does:

- a processing job whose container exits non-zero: FailureReason
  ``AlgorithmError: See job logs for more information``; the output is in the
  job's CloudWatch log stream;
- a training job of a framework container (the sagemaker-training toolkit):
  ``AlgorithmError: ExecuteUserScriptError:`` with ExitCode, ErrorMessage (the
  exception the script died of) and Command, the toolkit's failure file.

So a message that only the local runner's wording produces shows up as a
difference. The cases run in a process of their own because the emulator's
hooks are process-wide; `python parity_aws.py --serve` runs them one after
another (the imports of sagemaker, moto and the interpreter paid once, some
4 s of a case's 7 s of CPU): it reads one JSON line {"repo", "run_name",
"log"} a case from stdin and answers "PARITY {...}" on stdout, the case's own
output going to its log file. Each case gets what a fresh process would have:
moto's backends reset, a new emulator on a new port, the emulator's caches
(parsed programs, serialized history events, job requests, clients) emptied
and the hooks set for its own runner, its own working folder and environment.
"""

import json
import os
import re
import shlex
import sys
from dataclasses import replace
from pathlib import Path


def _decoded(value: str) -> str:
    """A script-mode hyperparameter as the toolkit passes it (JSON-encoded strings decoded)."""
    try:
        decoded = json.loads(value)
    except ValueError:
        return value
    return decoded if isinstance(decoded, str) else value


def main(repo: Path, run_name: str) -> dict:
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "parity"

    from mltp import invocation
    from mltp.aws import Clients
    from mltp.commands.run import run
    from mltp.commands.validate import validate
    from mltp.cli import _one_line
    from mltp.errors import MltpError
    from mltp.local import emulator, step_environments
    from mltp.local.runner import JobFailed, LocalJobRunner
    from mltp.outcome import exception_line
    from mltp.redaction import redact

    class SageMakerStandIn(LocalJobRunner):
        def __call__(self, kind, job_name, request, job):
            try:
                super().__call__(kind, job_name, request, job)
            except JobFailed as exc:
                empty = re.match(r"ClientError: no data found at (s3://(\S+?)/\S*)$", str(exc))
                if empty:  # SageMaker's words for a channel with no object under its prefix
                    raise JobFailed(
                        f'ClientError: No S3 objects found under S3 URL "{empty.group(1)}" given in input data '
                        f'source. Please ensure that the bucket exists in the selected region ({ctx.region}), that '
                        'objects exist under that S3 prefix, and that the role '
                        f'"{request.get("RoleArn", "")}" has "s3:ListBucket" permissions on bucket '
                        f'"{empty.group(2)}".') from None
                if not str(exc).startswith("AlgorithmError"):
                    raise  # MaxRuntimeExceeded, Stopped: SageMaker's own words already
                if kind == "processing":
                    raise JobFailed("AlgorithmError: See job logs for more information") from None
                log = (self.workdir / f"{job_name}.log").read_text(encoding="utf-8", errors="replace")
                code = re.search(r"exited with code (\d+)", str(exc))
                hps = request.get("HyperParameters") or {}
                program = json.loads(hps.get("sagemaker_program", '"train.py"'))
                args = " ".join(f"--{k} {shlex.quote(_decoded(v))}"
                                for k, v in sorted(hps.items()) if not k.startswith("sagemaker_"))
                raise JobFailed(
                    "AlgorithmError: ExecuteUserScriptError:\n"
                    f"ExitCode {code.group(1) if code else 1}\n"
                    f"ErrorMessage \"{exception_line(log) or ''}\"\n"
                    f"Command \"/usr/local/bin/python3.9 {program} {args}\"") from None

    server, endpoint = emulator.start_local_moto()
    try:
        inv = invocation.load(repo, None, run_name=run_name, report_dir=str(repo / ".mltp" / "parity-aws-report"),
                              check=True)
        validated = validate(inv)
        ctx = validated.context
        clients = Clients(ctx.region, endpoint)
        # The scripts run where a local run runs them: the framework's local environment
        # (SageMaker's training toolkit included), as the containers would on AWS.
        environments = step_environments(ctx.config)
        runner = SageMakerStandIn(clients, repo / ".mltp" / "parity-aws" / run_name, python=sys.executable,
                                  environments=environments)
        emulator.install_sfn_patches(sync_poll_seconds=0.2)
        emulator.install_sagemaker_backend_hook(runner)
        kwargs = {"Bucket": ctx.config.aws.bucket}
        if ctx.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": ctx.region}
        clients.s3.create_bucket(**kwargs)  # on AWS the bucket exists (docs/contract.md, 2.2)
        inv = inv.pointed_at(endpoint)
        validated = replace(validated, context=inv.run)
        try:
            run(inv, clients, validated, preflight=False, poll_seconds=0.2)
        except MltpError as exc:
            return {"exit_code": exc.exit_code, "error": redact(_one_line(exc))}
        finally:
            runner.stop()
        return {"exit_code": 0, "error": ""}
    finally:
        emulator.stop_local_moto(server)


def fresh_emulator_state() -> None:
    """What an earlier case left in this process, gone: moto's backends (they are
    process-wide, not the server's) and the emulator's caches, which are keyed by
    names every case shares (the run name, so the execution's ARN and job names)."""
    from moto.moto_api._internal.models import moto_api_backend

    from mltp.local import emulator

    moto_api_backend.reset()
    for cache in (emulator.FULL_REQUESTS, emulator.JOB_ENDED, emulator._SERIALIZED_EVENTS,
                  emulator._VALIDATED, emulator._CLIENTS):
        cache.clear()


def serve() -> None:
    """Cases one after another, one JSON line each on stdin (see the docstring)."""
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    environ, cwd = dict(os.environ), os.getcwd()
    for line in sys.stdin:
        case = json.loads(line)
        repo = Path(case["repo"]).resolve()
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(repo)
        with open(case["log"], "w") as log:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            try:
                fresh_emulator_state()
                result = main(repo, case["run_name"])
            except BaseException as exc:  # noqa: BLE001 - the test shows it; the next case still runs
                import traceback

                traceback.print_exc()
                result = {"exit_code": None, "error": f"parity_aws broke: {exc!r}"}
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
        os.chdir(cwd)
        answers.write("PARITY " + json.dumps(result) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        result = main(Path(sys.argv[1]).resolve(), sys.argv[2])
        sys.stdout.write("\nPARITY " + json.dumps(result) + "\n")
