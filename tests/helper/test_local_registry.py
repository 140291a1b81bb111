"""The local registry across local runs (.mltp/registry/), as a user drives it:
run twice, approve the first version, run again against a real champion, fetch
the approved model. Each command is its own process with its own emulator."""

import hashlib
import json
import os
import subprocess
import sys
import tarfile

from test_local import JENKINS_VARS, run_local, tiny


def mltp(repo, *args, env=None):
    base = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS and k != "BUILD_USER_ID"}
    base.update(env or {})
    return subprocess.run([sys.executable, "-m", "mltp.cli", *args], cwd=repo, env=base, capture_output=True,
                          text=True, timeout=120)


def set_score(repo, score):
    path = repo / "config.yaml"
    text = path.read_text()
    start = text.index("score: ") + len("score: ")
    end = text.index(",", start)
    path.write_text(text[:start] + str(score) + text[end:])


def test_run_approve_run_fetch(tmp_path):
    repo = tiny(tmp_path)
    with (repo / "config.yaml").open("a") as f:
        f.write("  - {metric: auc, beat_champion: true, by: 0.01}\n")

    first, error, report = run_local(repo, run_name="first")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "champion: none (no Approved version in model package group tiny-model); champion rules pass (auc)" in first.stdout
    junit = (report / "junit.xml").read_text()
    assert "no champion to beat" in junit and junit.count("<testcase") == 2
    store = repo / ".mltp" / "registry" / "tiny-model"
    assert (store / "registry.json").is_file()

    set_score(repo, 0.95)
    second, _, _ = run_local(repo, run_name="second")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "local: restored 1 version of model package group tiny-model" in second.stdout
    assert "model-package/tiny-model/2 (PendingManualApproval)" in second.stdout

    approved = mltp(repo, "approve", "--local", "--version", "1", "--note", "baseline", env={"BUILD_USER_ID": "rm-ann"})
    assert approved.returncode == 0, approved.stderr
    assert "tiny-model/1 is now Approved (Approved by rm-ann at " in approved.stdout

    listed = mltp(repo, "models", "--local", "--json")
    assert listed.returncode == 0, listed.stderr
    versions = json.loads(listed.stdout)
    assert [(v["version"], v["status"]) for v in versions] == [(2, "PendingManualApproval"), (1, "Approved")]
    assert versions[1]["metrics"] == {"auc": 0.93} and versions[1]["decided_by"] == "rm-ann"
    assert versions[0]["metrics"] == {"auc": 0.95}
    # a version names the registry copy the state machine made, not the run's own folder (docs/trust.md)
    assert versions[1]["model_data_url"].endswith("/tiny-model/registry/first/model.tar.gz"), versions[1]

    # 0.94 is better than the champion's 0.93, but not by 0.01 + a hair: the state machine refuses it.
    set_score(repo, 0.9399)
    third, error, report = run_local(repo, run_name="third")
    assert third.returncode == 3, third.stdout + third.stderr
    assert "champion: tiny-model/1 (Approved): auc=0.93" in third.stdout
    assert "needs >= champion + 0.01: 0.9399 < 0.94 (champion v1: 0.93)" in error
    data = json.loads((report / "report.json").read_text())
    assert data["champion"]["version"] == 1
    assert data["champion"]["comparison"][0]["verdict"] == "better"
    assert "## Champion" in (report / "report.md").read_text()
    # report.html shows the same comparison, from report.json's top-level table
    assert data["comparison"]["champion"] == "champion v1"
    assert [row["metric"] for row in data["comparison"]["rows"]] == ["auc"]
    html = (report / "report.html").read_text()
    assert "Champion vs challenger" in html and "champion v1" in html

    set_score(repo, 0.96)
    fourth, _, report = run_local(repo, run_name="fourth")
    assert fourth.returncode == 0, fourth.stdout + fourth.stderr
    assert "model-package/tiny-model/3 (PendingManualApproval)" in fourth.stdout
    registration = dict(line.split("=", 1) for line in (report / "registration.txt").read_text().splitlines())
    assert registration["version"] == "3" and registration["approval_status"] == "PendingManualApproval"
    assert registration["group"] == "tiny-model" and len(registration["sha256"]) == 64
    gate_text = (report / "gate.txt").read_text()
    assert "champion tiny-model/1 vs this run" in gate_text and ">= champion + 0.01" in gate_text
    comparison = json.loads((report / "report.json").read_text())["champion"]["comparison"]
    assert comparison == [{"metric": "auc", "champion": 0.93, "challenger": 0.96, "delta": comparison[0]["delta"],
                           "verdict": "better", "better": "higher"}]

    fetched = mltp(repo, "fetch-model", "--local", "--to", str(tmp_path / "deploy"))
    assert fetched.returncode == 0, fetched.stderr
    manifest = json.loads((tmp_path / "deploy" / "model-package.json").read_text())
    assert manifest["version"] == 1 and manifest["run"] == "first" and manifest["approved_by"] == "rm-ann"
    model = tmp_path / "deploy" / "model.tar.gz"
    assert hashlib.sha256(model.read_bytes()).hexdigest() == manifest["sha256"]
    with tarfile.open(model) as tar:
        assert json.load(tar.extractfile("model.json")) == {"score": 0.93}


def _start(repo, *args, env=None):
    base = {k: v for k, v in os.environ.items() if k not in JENKINS_VARS}
    base.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "mltp.cli", "run", ".", "--local", *args], cwd=repo, env=base,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_local_runs_at_once_with_one_default_name_take_two_names_and_keep_both_registrations(tmp_path):
    """The same default name (one BUILD_TAG, or a timestamp of the same second):
    the second run takes the next free name instead of both failing.

    And both registrations are kept: the second run waits for the registry
    while the first holds it (restore to save) and registers version 2.
    Without the lock both restored an empty registry, both registered version 1,
    and the later save lost the other's. (Two runs with names of their own, as
    `--run-name` gives, take the same lock: this pair of runs shows both.)"""
    repo = tiny(tmp_path)
    env = {"BUILD_TAG": "jenkins-tiny-7"}
    first, second = _start(repo, env=env), _start(repo, env=env)
    outputs = [proc.communicate(timeout=300) for proc in (first, second)]
    for proc, (out, err) in zip((first, second), outputs):
        assert proc.returncode == 0, out + err
    text = "".join(out for out, _ in outputs)
    assert "local: another local run of this repo is named jenkins-tiny-7; this one is jenkins-tiny-7-2" in text
    assert "local: waiting for another local session of this repo to finish with model package group tiny-model" in text
    assert sorted(p.name for p in (repo / ".mltp" / "runs").iterdir()) == ["jenkins-tiny-7", "jenkins-tiny-7-2"]
    saved = json.loads((repo / ".mltp" / "registry" / "tiny-model" / "registry.json").read_text())
    assert [v["ModelPackageVersion"] for v in saved["versions"]] == [1, 2]
    runs = sorted(v["CustomerMetadataProperties"].get("RunName", "") for v in saved["versions"])
    assert runs == ["jenkins-tiny-7", "jenkins-tiny-7-2"], runs


def test_a_second_local_run_with_the_same_run_name_is_exit_2(tmp_path):
    import fcntl
    import time

    repo = tiny(tmp_path)
    first = _start(repo, "--run-name", "same")
    lock = repo / ".mltp" / "locks" / "run-same.lock"
    deadline = time.time() + 120
    while time.time() < deadline and first.poll() is None:  # until the first run holds its name
        if lock.is_file():
            with open(lock) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(handle, fcntl.LOCK_UN)
                except BlockingIOError:
                    break
        time.sleep(0.05)
    second = mltp(repo, "run", ".", "--local", "--run-name", "same")
    out, err = first.communicate(timeout=300)
    assert second.returncode == 2, second.stdout + second.stderr
    assert second.stderr == (f"mltp: run name same: another local run of this repo is using it (pid {first.pid}); "
                             f"wait for it to finish or choose another --run-name\n")
    assert first.returncode == 0, out + err  # the first is not disturbed
