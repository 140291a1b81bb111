#!/usr/bin/env python3
"""Benchmark: `mltp sync` against `aws s3 sync` on a 200-file model repo.

Not a test: it prints figures. Both tools run as fresh processes (interpreter
start and imports included, as on a Jenkins agent) against one moto server on
loopback, in the same run, alternating, so machine load hits both alike.

  first sync  - nothing under the target prefix yet
  no-op sync  - the same files again: mltp lists the prefix once and checks
                every object's size and ETag (the MD5 of the bytes it must
                hold); awscli lists the prefix and compares sizes and times
  new mtimes  - the same files with new modification times, as after a fresh
                checkout on a Jenkins agent: mltp still only lists and verifies
                (the hash ignores times), awscli uploads every file again

It also counts the S3 requests of one no-op sync per tool (a counter in
front of moto), listings apart: the goal is at most one listing call per
1,000 objects. Goal: the no-op sync <= 0.5x aws s3 sync.

Both tools run from compiled bytecode, as installed: pip compiles what it
installs (the helper's wheel, awscli), but a checkout's helper run with
PYTHONDONTWRITEBYTECODE=1 would compile its own modules in every process (a
sixth of the instructions of a no-op `mltp sync`), so both packages are compiled first.

mltp uploads more on a first sync (every file under src/, sourcedir.tar.gz and
manifest.json) than awscli (every file once), so the first-sync ratio is not
like for like; the no-op sync is the one every build pays.

Usage: python benchmarks/bench_sync.py [--files 200] [--repeat 5]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import logging

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's per-request access log

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port  # noqa: E402

EXAMPLE = ROOT / "examples" / "fraud-detection"
REGION = "ap-northeast-2"
BUCKET = "mltp-bench"


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


class RequestCounter:
    """WSGI middleware in front of moto: counts the S3 requests each tool makes,
    listings apart (ListObjectsV2, or ListObjects v1: a GET of the bucket itself)."""

    def __init__(self, app, bucket: str):
        self.app, self.bucket = app, bucket
        self.listings = self.requests = 0

    def reset(self) -> None:
        self.listings = self.requests = 0

    def __call__(self, environ, start_response):
        self.requests += 1
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        if environ.get("REQUEST_METHOD") == "GET" and path.rstrip("/") == f"/{self.bucket}" and (
                "list-type=2" in query or "prefix=" in query or "marker=" in query):
            self.listings += 1
        return self.app(environ, start_response)


def compile_tools() -> None:
    """Both tools' own modules compiled to bytecode, as a pip install leaves them
    (compileall skips what is up to date; a read-only tree is left as it is)."""
    import compileall
    import importlib.util

    for package in ("mltp", "awscli"):
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=2)


def measure(files: int = 200, repeat: int = 5) -> dict:
    """Median seconds per tool and kind of sync, and the requests of one no-op sync each."""
    from moto.server import ThreadedMotoServer
    import boto3

    compile_tools()
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    counter = RequestCounter(server._server.app, BUCKET)
    server._server.app = counter  # werkzeug's handler calls server.app per request
    env = dict(os.environ, AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
               AWS_DEFAULT_REGION=REGION, AWS_ENDPOINT_URL=endpoint)
    for var in ("AWS_PROFILE", "BRANCH_NAME", "CHANGE_ID", "BUILD_TAG", "MLTP_CONFIG"):
        env.pop(var, None)
    work = Path(tempfile.mkdtemp(prefix="mltp-bench-"))
    env.setdefault("MLTP_CACHE_DIR", str(work / "cache"))  # the helper's caches, as on an agent: warm after the first
    calls = {}
    try:
        boto3.client("s3", region_name=REGION, endpoint_url=endpoint, aws_access_key_id="bench",
                     aws_secret_access_key="bench").create_bucket(
            Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
        repo = work / "repo"
        make_repo(repo, files)
        shipped = sum(1 for p in repo.rglob("*") if p.is_file())
        size = sum(p.stat().st_size for p in repo.rglob("*") if p.is_file())
        mltp = [sys.executable, "-m", "mltp.cli", "sync", "--no-preflight", str(repo)]
        times = {f"{tool} {kind}": [] for tool in ("mltp", "awscli") for kind in KINDS}

        def counted(tool, command):
            counter.reset()
            elapsed = timed(command, env)
            calls[tool] = (counter.listings, counter.requests)
            return elapsed

        for rep in range(repeat):
            # Files older than any upload, so awscli's no-op sync is a true no-op:
            # it re-uploads a file whose mtime is newer than the object (as the
            # previous round's "new mtimes" left them).
            set_model_name(repo, f"bench-{rep}")  # a new code prefix: a true first sync
            touch(repo, time.time() - 3600)
            times["mltp first"].append(timed(mltp, env))
            times["mltp no-op"].append(counted("mltp", mltp))
            target = f"s3://{BUCKET}/awscli/{rep}/"
            awscli = [sys.executable, "-m", "awscli", "s3", "sync", str(repo), target,
                      "--endpoint-url", endpoint, "--only-show-errors"]
            times["awscli first"].append(timed(awscli, env))
            times["awscli no-op"].append(counted("awscli", awscli))
            touch(repo, time.time() + 5)
            times["mltp new mtimes"].append(timed(mltp, env))
            times["awscli new mtimes"].append(timed(awscli, env))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    median = {key: statistics.median(values) for key, values in times.items()}
    # mltp's prefix holds every file under src/, plus the tarball and manifest.json.
    return {"files": shipped, "bytes": size, "objects": shipped + 2, "repeat": repeat, "median": median,
            "calls": calls}


KINDS = ("first", "no-op", "new mtimes")
GOAL_RATIO = 0.5


def rows(quick: bool = False) -> list:
    from common import Row, at_most

    result = measure(repeat=3 if quick else 5)
    median, (mltp_lists, mltp_calls), (aws_lists, aws_calls) = (
        result["median"], result["calls"]["mltp"], result["calls"]["awscli"])
    if aws_calls > aws_lists:  # the anchor uploaded something: its time is not a no-op's
        raise SystemExit(f"aws s3 sync's no-op sync made {aws_calls - aws_lists} requests besides listing")
    ours, theirs = median["mltp no-op"], median["awscli no-op"]
    allowed = -(-result["objects"] // 1000)
    return [
        Row(f"no-op sync, verified ({result['files']} files)", f"{ours:.2f} s", f"aws s3 sync: {theirs:.2f} s",
            ours / theirs, f"<= {GOAL_RATIO}x", at_most(ours / theirs, GOAL_RATIO, "x")),
        Row("  same files, new mtimes (a fresh checkout)", f"{median['mltp new mtimes']:.2f} s",
            f"aws s3 sync (uploads all): {median['awscli new mtimes']:.2f} s",
            median["mltp new mtimes"] / median["awscli new mtimes"]),
        Row("  listing calls in the no-op sync", f"{mltp_lists} ({mltp_calls} requests)",
            f"aws s3 sync: {aws_lists} ({aws_calls} requests)", None,
            f"<= {allowed} (1 per 1000 objects)", at_most(mltp_lists, allowed, "", 0)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    result = measure(args.files, args.repeat)
    median = result["median"]
    print(f"{result['files']} files, {result['bytes'] / 1024:.0f} KiB; median of {args.repeat} runs each, seconds, "
          f"fresh process per sync, moto server on loopback")
    print(f"{'':<20}{'mltp':>9}{'awscli':>9}{'mltp/awscli':>13}")
    for kind in KINDS:
        ours, theirs = median[f"mltp {kind}"], median[f"awscli {kind}"]
        label = "re-sync, new mtimes" if kind == "new mtimes" else f"{kind} sync"
        print(f"{label:<20}{ours:>9.2f}{theirs:>9.2f}{ours / theirs:>13.2f}")
    for tool, (listings, requests) in sorted(result["calls"].items()):
        print(f"no-op sync, {tool}: {listings} listing call{'s' if listings != 1 else ''}, {requests} requests in all "
              f"({result['objects'] if tool == 'mltp' else result['files']} objects under the prefix)")
    print(f"goal: no-op sync <= {GOAL_RATIO}x aws s3 sync: "
          f"{'met' if median['mltp no-op'] / median['awscli no-op'] <= GOAL_RATIO else 'MISSED'}")


if __name__ == "__main__":
    main()
