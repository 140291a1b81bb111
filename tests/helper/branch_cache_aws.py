"""The AWS side of the branch step-cache tests (test_branch_cache.py), run as
its own process: `python branch_cache_aws.py REPO` prints one JSON line
`CACHE {...}`.

As cache_aws.py: what `mltp run REPO` runs on AWS, against moto in server
mode, whose Step Functions interpreter executes the rendered definitions (the
default branch's `<name>` and the pull request's `<name>--pr-7`), Reuse
choices included; SageMaker's jobs run in the local job runner, which notes
each job. Each run sees the Jenkins variables of its build. In order:

  main-1     default branch: every step runs, records under cache/;
  pr-1       pull request 7 with evaluation.py edited: preprocessing and
             training are the default branch's (copied into its own run's
             folder), evaluation runs; its record goes under branches/pr-7/cache/;
  main-2     default branch with the same edit: evaluation's key is pr-1's,
             yet it runs (the default branch never reads a branch's records);
  expired    the default branch's preprocessing and training records made 40
             days old; then pr-3, with evaluation.py edited again: nothing
             usable on the default branch, so every step runs.

The process is separate because the emulator's hooks are process-wide.
"""

import io
import json
import os
import sys
from contextlib import redirect_stdout
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from cache_aws import dummy_credentials, emulated_account
PR = {"BRANCH_NAME": "PR-7", "CHANGE_ID": "7", "CHANGE_TARGET": "main", "BRANCH_IS_PRIMARY": "false"}
MAIN = {"BRANCH_NAME": "main", "BRANCH_IS_PRIMARY": "true"}


def main(repo: Path) -> dict:
    dummy_credentials()

    from mltp import cache_index, invocation
    from mltp.commands.plan import plan
    from mltp.commands.run import run
    from mltp.commands.validate import validate
    from mltp.errors import MltpError
    from mltp.local import emulator

    started = []

    def jenkins(env):
        for var in set(PR) | set(MAIN):
            os.environ.pop(var, None)
        os.environ.update(env)

    server, endpoint = emulator.start_local_moto()
    results = {}
    try:
        jenkins(MAIN)
        first = invocation.load(repo, None, run_name="main-1", check=True)
        cfg, region = first.config, first.run.region
        clients, runner = emulated_account(repo, first, endpoint, started)
        try:
            for name, env, change in (("main-1", MAIN, None), ("pr-1", PR, "evaluation"), ("main-2", MAIN, None),
                                      ("pr-3", PR, "expire")):
                jenkins(env)
                if change:
                    (repo / "evaluation.py").write_text((repo / "evaluation.py").read_text() + f"\n# {name}\n")
                if change == "expire":
                    _age_default_records(clients, cfg, cache_index, timedelta(days=40))
                inv = invocation.load(repo, None, run_name=name, report_dir=str(repo / ".mltp" / "reports" / name),
                                      check=True)
                inv = inv.pointed_at(endpoint)
                validated = replace(validate(inv), context=inv.run)
                planned = plan(inv, clients)  # `mltp plan` on AWS
                before = len(started)
                out = io.StringIO()
                code = 0
                with redirect_stdout(out):
                    try:
                        run(inv, clients, validated, preflight=False, poll_seconds=0.2)
                    except MltpError as exc:
                        code = exc.exit_code
                report_dir = repo / ".mltp" / "reports" / name
                report = json.loads((report_dir / "report.json").read_text())
                arn = f"arn:aws:states:{region}:123456789012:execution:{inv.run.state_machine}:{name}"
                execution_input = json.loads(clients.sfn.describe_execution(executionArn=arn)["input"])
                results[name] = {
                    "exit_code": code, "state_machine": inv.run.state_machine,
                    "jobs": [j.split("-")[-2] for j in started[before:]],
                    "lines": out.getvalue().splitlines(), "plan": planned,
                    "steps": {s["name"]: [s["status"], s.get("cached_from"), s.get("cached_from_default_branch")]
                              for s in report["steps"]},
                    "input": {k: execution_input[k] for k in ("TrainDataS3Uri", "ModelArtifactS3Uri", "Cache")},
                    "junit": (report_dir / "junit.xml").read_text(),
                    "markdown": (report_dir / "report.md").read_text(),
                    "html": (report_dir / "report.html").read_text(),
                }
        finally:
            runner.stop()
        root = f"{cfg.aws.prefix}/{cfg.name}/"
        listed = clients.s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=root).get("Contents", [])
        results["objects"] = {item["Key"][len(root):]: item["ETag"] for item in listed}
        return results
    finally:
        emulator.stop_local_moto(server)


def _age_default_records(clients, cfg, cache_index, age):
    """Rewrites the end time of the default branch's records (as an admin would
    find them weeks later): the same records, `age` older."""
    prefix = f"{cfg.aws.prefix}/{cfg.name}/cache/"
    for item in clients.s3.list_objects_v2(Bucket=cfg.aws.bucket, Prefix=prefix).get("Contents", []):
        raw = json.loads(clients.s3.get_object(Bucket=cfg.aws.bucket, Key=item["Key"])["Body"].read())
        raw["finished"] = (cache_index.now_utc() - age).isoformat()
        clients.s3.put_object(Bucket=cfg.aws.bucket, Key=item["Key"], Body=json.dumps(raw).encode())


if __name__ == "__main__":
    found = main(Path(sys.argv[1]).resolve())
    sys.stdout.write("\nCACHE " + json.dumps(found) + "\n")
