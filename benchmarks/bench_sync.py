#!/usr/bin/env python3
"""Benchmark: `mltp sync` against `aws s3 sync` on a 200-file model repo.

Not a test: it prints figures. Both tools run as fresh processes (interpreter
start and imports included, as on a Jenkins agent) against one moto server on
loopback, in the same run, alternating, so machine load hits both alike.

  first sync  - nothing under the target prefix yet
  no-op sync  - the same files again: mltp does one HEAD on manifest.json,
                awscli lists the prefix and compares sizes and times
  new mtimes  - the same files with new modification times, as after a fresh
                checkout on a Jenkins agent: mltp still does one HEAD (the hash
                ignores times), awscli uploads every file again

mltp uploads more on a first sync (every file under src/, sourcedir.tar.gz and
manifest.json) than awscli (every file once), so the first-sync ratio is not
like for like; the no-op sync is the one every build pays.

Usage: python benchmarks/bench_sync.py [--files 200] [--repeat 5]
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import logging

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fraud-detection"
REGION = "ap-northeast-2"
BUCKET = "mltp-bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_repo(target: Path, count: int) -> None:
    """The example's config and three scripts, plus `count` generated modules of 0.5-8 KiB."""
    target.mkdir(parents=True)
    for name in ("config.yaml", "preprocessing.py", "train.py", "evaluation.py"):
        shutil.copyfile(EXAMPLE / name, target / name)
    for index in range(count):
        package = target / "lib" / f"pkg{index % 10}"
        package.mkdir(parents=True, exist_ok=True)
        lines = 8 + (index * 37) % 200
        body = "".join(f"CONSTANT_{index}_{line} = {line * index} * 'x{line}'\n" for line in range(lines))
        (package / f"module_{index:03d}.py").write_text(f'"""Generated module {index}."""\n{body}')


def set_model_name(repo: Path, name: str) -> None:
    path = repo / "config.yaml"
    text = path.read_text()
    current = next(line for line in text.splitlines() if line.startswith("name: "))
    path.write_text(text.replace(current + "\n", f"name: {name}\n", 1).replace("bucket: mlops-artifacts", f"bucket: {BUCKET}"))


def touch(repo: Path, when: float) -> None:
    for path in repo.rglob("*"):
        if path.is_file():
            os.utime(path, (when, when))


def timed(command, env) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(command)}\n{done.stdout}{done.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer
    import boto3

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=endpoint)
    for var in ("AWS_PROFILE", "BRANCH_NAME", "CHANGE_ID", "BUILD_TAG", "MLTP_CONFIG"):
        env.pop(var, None)
    try:
        boto3.client("s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        work = Path(tempfile.mkdtemp(prefix="mltp-bench-"))
        repo = work / "repo"
        make_repo(repo, args.files)
        shipped = sum(1 for p in repo.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
        mltp = [sys.executable, "-m", "mltp.cli", "sync", "--no-preflight", str(repo)]
        kinds = ("first", "no-op", "new mtimes")
        times = {f"{tool} {kind}": [] for tool in ("mltp", "awscli") for kind in kinds}
        for rep in range(args.repeat):
            set_model_name(repo, f"bench-{rep}")  # a new code prefix: a true first sync
            times["mltp first"].append(timed(mltp, env))
            times["mltp no-op"].append(timed(mltp, env))
            target = f"s3://{BUCKET}/awscli/{rep}/"
            awscli = [sys.executable, "-m", "awscli", "s3", "sync", str(repo), target,
                      "--endpoint-url", endpoint, "--only-show-errors"]
            times["awscli first"].append(timed(awscli, env))
            times["awscli no-op"].append(timed(awscli, env))
            touch(repo, time.time() + 5)
            times["mltp new mtimes"].append(timed(mltp, env))
            times["awscli new mtimes"].append(timed(awscli, env))
        shutil.rmtree(work, ignore_errors=True)
    finally:
        server.stop()

    median = {key: statistics.median(values) for key, values in times.items()}
    print(f"{shipped} files, {size / 1024:.0f} KiB; median of {args.repeat} runs each, seconds, "
          f"fresh process per sync, moto server on loopback")
    print(f"{'':<20}{'mltp':>9}{'awscli':>9}{'mltp/awscli':>13}")
    for kind in kinds:
        ours, theirs = median[f"mltp {kind}"], median[f"awscli {kind}"]
        label = "re-sync, new mtimes" if kind == "new mtimes" else f"{kind} sync"
        print(f"{label:<20}{ours:>9.2f}{theirs:>9.2f}{ours / theirs:>13.2f}")


if __name__ == "__main__":
    main()
