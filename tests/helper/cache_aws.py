"""The AWS side of the step cache and resume tests (test_step_cache.py), run
as its own process: `python cache_aws.py REPO [cache|resume]` prints one JSON
line `CACHE {...}`.

It runs what `mltp run REPO` runs on AWS (commands.run.run with clients of its
own: S3 records, the inputs' ETags listed from S3, the decisions in the
execution input) against moto in server mode, whose Step Functions interpreter
executes the rendered definition, Reuse choices included; SageMaker's jobs are
executed by the local job runner, which notes each job it is handed. Runs, in
order, on one emulator:

  first      every step runs, and the records are written;
  second     the same code and data: the same keys, so no job starts;
  edited     evaluation.py edited: only evaluation runs;
  new-data   the input object rewritten (another ETag): every step runs;
  forced     `--no-cache`: every step runs.

With `resume` (no step has the cache on):

  broken     evaluation fails (its MODE is raise);
  fixed      MODE ok, then `mltp resume` (the newest failed run): moto has
             no RedriveExecution, so a new run takes preprocessing and
             training from `broken` and runs evaluation only.

With `trigger` (every step has the cache on; retrain on `raw` with a marker):

  first      `mltp run`: every step runs; wait writes the records and
             last-good.json (with what the trigger needs for the keys);
  same-data  the producer writes the same bytes again (the same ETags) and
             the marker: the trigger's handler (trigger_handler.handle, the
             function's code) starts a retrain, which `mltp wait` follows:
             every key is unchanged, so no job starts;
  new-data   other bytes: the retrain runs every step.

The process is separate because the emulator's hooks are process-wide.
"""

import io
import json
import os
import sys
from contextlib import redirect_stdout
from dataclasses import replace
from pathlib import Path

DATA_BUCKET = "tiny-data"


def dummy_credentials() -> None:
    """Only the emulator's dummy key in this process: nothing reaches real AWS."""
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL"):
        os.environ.pop(var, None)
    os.environ["AWS_ACCESS_KEY_ID"] = os.environ["AWS_SECRET_ACCESS_KEY"] = "cache"


def emulated_account(repo: Path, first, endpoint: str, started: list):
    """(clients, runner) for the emulator at `endpoint`: the interpreter's hooks
    run each job as a local process through `runner`, which appends the job's
    name to `started`; the model's and the data's buckets exist, with one
    object of data. Call runner.stop() at the end."""
    from mltp.aws import Clients
    from mltp.local import emulator, step_environments
    from mltp.local.runner import LocalJobRunner

    class CountingRunner(LocalJobRunner):
        def __call__(self, kind, job_name, request, job):
            started.append(job_name)
            super().__call__(kind, job_name, request, job)

    region = first.run.region
    clients = Clients(region, endpoint)
    runner = CountingRunner(clients, repo / ".mltp" / "cache-aws", python=sys.executable,
                            environments=step_environments(first.config))
    emulator.install_sfn_patches(sync_poll_seconds=0.2)
    emulator.install_sagemaker_backend_hook(runner)
    for bucket in (first.config.aws.bucket, DATA_BUCKET):
        clients.s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region})
    clients.s3.put_object(Bucket=DATA_BUCKET, Key="raw/data.csv", Body=b"x\n1\n")
    return clients, runner


def main(repo: Path, scenario: str = "cache") -> dict:
    dummy_credentials()

    from mltp import invocation
    from mltp.commands.plan import plan
    from mltp.commands.resume import resume
    from mltp.commands.run import run
    from mltp.commands.validate import validate
    from mltp.errors import MltpError
    from mltp.local import emulator

    started = []
    server, endpoint = emulator.start_local_moto()
    results = {}
    try:
        first = invocation.load(repo, None, run_name="first", check=True)
        clients, runner = emulated_account(repo, first, endpoint, started)
        if scenario == "trigger":
            try:
                results.update(_trigger(repo, endpoint, clients, runner, started))
            finally:
                runner.stop()
            return results
        try:
            scenarios = {"cache": (("first", None, False), ("second", None, False), ("edited", "evaluation", False),
                                   ("new-data", "data", False), ("forced", None, True)),
                         "resume": (("broken", "raise", False), ("fixed", "ok", False))}
            for name, change, no_cache in scenarios[scenario]:
                if change in ("raise", "ok"):
                    text = (repo / "config.yaml").read_text()
                    (repo / "config.yaml").write_text(text.replace(
                        "  evaluation:\n    environment: {MODE: " + ("ok" if change == "raise" else "raise") + "}",
                        "  evaluation:\n    environment: {MODE: " + change + "}"))
                if change == "evaluation":
                    (repo / "evaluation.py").write_text((repo / "evaluation.py").read_text() + "\n# edited\n")
                elif change == "data":
                    clients.s3.put_object(Bucket=DATA_BUCKET, Key="raw/data.csv", Body=b"x\n2\n")
                inv = invocation.load(repo, None, run_name=name, report_dir=str(repo / ".mltp" / "reports" / name),
                                      check=True)
                inv = replace(inv.pointed_at(endpoint), no_cache=no_cache)
                validated = replace(validate(inv), context=inv.run)
                planned = plan(inv, clients) if scenario == "cache" else []  # `mltp plan` on AWS
                before = len(started)
                out = io.StringIO()
                code = 0
                with redirect_stdout(out):
                    try:
                        if name == "fixed":
                            resume(inv, clients, validated, preflight=False, poll_seconds=0.2)
                        else:
                            run(inv, clients, validated, preflight=False, poll_seconds=0.2)
                    except MltpError as exc:
                        code = exc.exit_code
                report = json.loads((repo / ".mltp" / "reports" / name / "report.json").read_text())
                results[name] = {"exit_code": code, "jobs": [j.split("-")[-2] for j in started[before:]],
                                 "lines": out.getvalue().splitlines(), "plan": planned,
                                 "steps": {s["name"]: [s["status"], s.get("cached_from")] for s in report["steps"]}}
        finally:
            runner.stop()
        prefix = f"{first.config.aws.prefix}/{first.config.name}/cache/"
        listed = clients.s3.list_objects_v2(Bucket=first.config.aws.bucket, Prefix=prefix).get("Contents", [])
        results["records"] = sorted(item["Key"][len(prefix):] for item in listed)
        return results
    finally:
        emulator.stop_local_moto(server)


def _trigger(repo: Path, endpoint: str, clients, runner, started) -> dict:
    """The retrain scenario: the first run by `mltp run`, then two retrains
    started by the trigger's handler and followed by `mltp wait`."""
    from datetime import datetime, timedelta, timezone

    from mltp import invocation, runs, trigger, trigger_handler
    from mltp.commands.run import run
    from mltp.commands.validate import validate
    from mltp.commands.wait import wait
    from mltp.errors import MltpError

    results = {}

    def follow(name, action, before=None):
        """`before`: the jobs started until the run began (a retrain has begun, and
        may have started its first job, before it is followed)."""
        inv = invocation.load(repo, None, run_name=name, report_dir=str(repo / ".mltp" / "reports" / name), check=True)
        inv = inv.pointed_at(endpoint)
        before = len(started) if before is None else before
        out = io.StringIO()
        code = 0
        with redirect_stdout(out):
            try:
                action(inv)
            except MltpError as exc:
                code = exc.exit_code
        report = json.loads((repo / ".mltp" / "reports" / name / "report.json").read_text())
        results[name] = {"exit_code": code, "jobs": [j.split("-")[-2] for j in started[before:]],
                         "lines": out.getvalue().splitlines(),
                         "steps": {s["name"]: [s["status"], s.get("cached_from")] for s in report["steps"]}}
        return inv

    def produce(body: bytes) -> None:
        clients.s3.put_object(Bucket=DATA_BUCKET, Key="raw/data.csv", Body=body)
        clients.s3.put_object(Bucket=DATA_BUCKET, Key="raw/_SUCCESS", Body=b"")

    produce(b"x\n1\n")
    first = follow("first", lambda inv: run(inv, clients, replace(validate(inv), context=inv.run), preflight=False,
                                            poll_seconds=0.2))
    settings = trigger_handler.Settings(trigger.environment(first.run, runs.state_machine_arn(first.run, clients)))
    for index, (name, body) in enumerate((("same-data", b"x\n1\n"), ("new-data", b"x\n2\n"))):
        produce(body)
        # Event times have whole seconds; a fully reused run can end within the
        # second it started, so each burst is put one second after the last.
        when = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=1 + index)
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "eventTime": when.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                              "s3": {"bucket": {"name": DATA_BUCKET},
                                     "object": {"key": "raw/_SUCCESS", "sequencer": name}}}]}
        before = len(started)
        handled = trigger_handler.handle(event, clients.s3, clients.sfn, settings, now=when)
        assert handled["action"] == "started", handled
        results[f"{name}-trigger"] = handled
        follow(handled["run"], lambda inv: wait(inv, clients, poll_seconds=0.2), before)
        results[name] = results.pop(handled["run"])
    return results


if __name__ == "__main__":
    found = main(Path(sys.argv[1]).resolve(), *sys.argv[2:3])
    sys.stdout.write("\nCACHE " + json.dumps(found) + "\n")
