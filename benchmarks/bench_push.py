#!/usr/bin/env python3
"""Benchmark: push -> execution started, as the Jenkins step runs it.

Not a test: it prints figures. It drives the step's real command sequence,
resources/mltp/helper.sh with MLTP_VERB set as vars/mltpHelper.groovy sets it,
one fresh helper process per stage: `validate` (stage Validate), `publish`
(stage Deploy: sync and deploy in one process), `start` (stage Train, before
`wait`), against a moto server on loopback.

  cold  - the first build: code uploaded, state machine created, definition
          rendered (the SDKs imported)
  warm  - a later build of the same commit (median of --repeat): a no-op sync,
          an unchanged deploy from the definition cache, a new run started

The anchor is the same three stages as four helper processes (sync and deploy
apart), the way the step ran before `publish`. Goal: warm <= 1.5 s in total.

With the preflight policy in force (the account set up as the docs ask: the
bucket and both roles exist in moto): the cold build runs the preflight and
remembers the pass (preflight_cache.py), the warm builds skip it in one line.
Anchor: a Python process that makes one boto3 call (STS GetCallerIdentity);
goal: warm push -> started <= 4x that. `--preflight always` is measured too:
against moto IAM answers in milliseconds, so the figure understates what the
cache saves on AWS, where IAM's and Service Quotas' calls took 1.4 s of 2 s.

Usage: python benchmarks/bench_push.py [--repeat 5]
"""

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

logging.getLogger("werkzeug").setLevel(logging.CRITICAL)  # the preflight asks for APIs moto lacks

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fraud-detection"
HELPER_SH = ROOT / "resources" / "mltp" / "helper.sh"
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port  # noqa: E402

GOAL_SECONDS = 1.5
PREFLIGHT_GOAL_RATIO = 4.0  # push -> started, preflight policy included, against a one-call boto3 process


def run_stage(verb: str, env: dict, repo: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(["/bin/sh", str(HELPER_SH)], env=dict(env, MLTP_VERB=verb), cwd=repo,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"mltp {verb} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return seconds


def build(env: dict, repo: Path, run_name: str, verbs) -> dict:
    env = dict(env, MLTP_RUN_NAME=run_name)
    return {verb: run_stage(verb, env, repo) for verb in verbs}


def measure(repeat: int = 5) -> dict:
    """Seconds per stage: the cold build, and each warm build (publish) and anchor build (sync, deploy apart)."""
    import boto3
    from moto.server import ThreadedMotoServer

    from mltp.local.emulator import install_logs_extensions

    install_logs_extensions()  # moto lacks the saved Logs Insights queries deploy writes

    mltp = shutil.which("mltp", path=str(Path(sys.executable).parent))
    if not mltp:
        raise SystemExit("mltp is not installed next to this Python (make setup)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="mltp-bench-push-"))
    try:
        endpoint = f"http://127.0.0.1:{port}"
        repo = work / "fraud-detection"
        shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns(".mltp", "__pycache__"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLTP_", "BRANCH_", "CHANGE_"))}
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_ENDPOINT_URL=endpoint,
                   MLTP=mltp, MLTP_REPO=str(repo), MLTP_ERROR_FILE=str(work / "error.txt"),
                   MLTP_INFO_FILE=str(work / "info.txt"), MLTP_PREFLIGHT="auto", PYTHONUNBUFFERED="1",
                   MLTP_CACHE_DIR=str(work / "cache"), XDG_CACHE_HOME=str(work / "xdg"),
                   BRANCH_NAME="main", BRANCH_IS_PRIMARY="true")
        region = "ap-northeast-2"
        s3 = boto3.client("s3", region_name=region, endpoint_url=endpoint, aws_access_key_id="bench",
                          aws_secret_access_key="bench")
        s3.create_bucket(Bucket="mlops-artifacts", CreateBucketConfiguration={"LocationConstraint": region})
        iam = boto3.client("iam", region_name=region, endpoint_url=endpoint, aws_access_key_id="bench",
                           aws_secret_access_key="bench")
        for role, service in (("StepFunctionsExecution", "states"), ("SageMakerExecution", "sagemaker")):
            iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": f"{service}.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))

        cold = build(env, repo, "bench-cold", PUBLISH)  # runs the preflight and remembers the pass
        warm, anchor, always, one_call = [], [], [], []
        for i in range(repeat):  # alternate, so machine load hits all alike
            warm.append(build(env, repo, f"bench-warm-{i}", PUBLISH))
            anchor.append(build(env, repo, f"bench-apart-{i}", APART))
            always.append(build(dict(env, MLTP_PREFLIGHT="always"), repo, f"bench-always-{i}", PUBLISH))
            one_call.append(one_call_process(env))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"cold": cold, "warm": warm, "anchor": anchor, "always": always, "repeat": repeat,
            "warm_total": statistics.median(sum(r.values()) for r in warm),
            "anchor_total": statistics.median(sum(r.values()) for r in anchor),
            "always_total": statistics.median(sum(r.values()) for r in always),
            "one_call": statistics.median(one_call)}


def one_call_process(env: dict) -> float:
    """A fresh Python process that makes one boto3 call: the issue's anchor for push -> started."""
    code = ("import boto3; boto3.client('sts', region_name='ap-northeast-2').get_caller_identity()")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


PUBLISH = ("validate", "publish", "start")
APART = ("validate", "sync", "deploy", "start")


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(3 if quick else 5)
    warm, anchor = result["warm_total"], result["anchor_total"]
    one_call, always = result["one_call"], result["always_total"]
    stages = ", ".join(f"{verb} {statistics.median(r[verb] for r in result['warm']):.2f}" for verb in PUBLISH)
    return [
        Row("push -> execution started, warm", f"{warm:.2f} s ({stages})",
            f"sync and deploy as 2 processes: {anchor:.2f} s", warm / anchor, f"<= {GOAL_SECONDS} s",
            at_most(warm, GOAL_SECONDS)),
        Row("push -> started, preflight once per change", f"{warm:.2f} s",
            f"one-call boto3 process: {one_call:.2f} s", warm / one_call, f"<= {PREFLIGHT_GOAL_RATIO:g}x",
            at_most(warm / one_call, PREFLIGHT_GOAL_RATIO, unit="x")),
        Row("push -> started, --preflight always", f"{always:.2f} s",
            f"one-call boto3 process: {one_call:.2f} s", always / one_call),
        Row("push -> execution started, cold (first build)", f"{sum(result['cold'].values()):.2f} s"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.repeat)
    cold, warm, warm_total, anchor_total = result["cold"], result["warm"], result["warm_total"], result["anchor_total"]

    def median(rows, verb):
        return statistics.median(r[verb] for r in rows)

    print(f"push -> execution started, helper.sh stages against moto (median of {args.repeat}; "
          "preflight once per change: run by the cold build, skipped by the warm ones)")
    print(f"{'stage':<9} {'cold s':>7} {'warm s':>7}")
    for verb in PUBLISH:
        print(f"{verb:<9} {cold[verb]:7.2f} {median(warm, verb):7.2f}")
    print(f"{'total':<9} {sum(cold.values()):7.2f} {warm_total:7.2f}")
    print(f"anchor: sync and deploy as two processes (warm): {anchor_total:.2f} s; ratio {warm_total / anchor_total:.2f}")
    one_call = result["one_call"]
    print(f"anchor: a one-call boto3 process: {one_call:.2f} s; warm {warm_total / one_call:.2f}x (goal <= "
          f"{PREFLIGHT_GOAL_RATIO:g}x); --preflight always {result['always_total']:.2f} s ({result['always_total'] / one_call:.2f}x)")
    verdict = "met" if warm_total <= GOAL_SECONDS else f"MISSED by {warm_total - GOAL_SECONDS:.2f} s"
    print(f"goal: warm <= {GOAL_SECONDS} s: {verdict}")


if __name__ == "__main__":
    main()
