"""Runs SageMaker jobs as local processes, for the embedded emulator.

The emulator hands us the exact CreateProcessingJob / CreateTrainingJob request
the state machine sent. We do what the SageMaker containers do with it:
download the inputs from (emulated) S3 into the job's /opt/ml tree, run the
job's command with the contract's paths and variables (docs/contract.md, section 3), pack the
model directory into model.tar.gz, and upload the outputs. Because everything
comes from S3, the local run executes exactly the code `sync` shipped, ignore
rules included.

Training runs AWS's own training toolkit (`sagemaker-training`, what the
framework containers start with `train`), with SAGEMAKER_BASE_DIR at the job's
folder: it reads the config files written here, sets the SM_* variables,
decodes the hyperparameters, installs requirements.txt and writes the failure
file the job's FailureReason comes from. Processing jobs run their
ContainerEntrypoint as is (mltp's processing entry, which installs
requirements.txt, then the script). Each step's interpreter is the Python of its
local environment (envs.py).

Each job's /opt/ml tree lives under a work folder. Where the machine allows it,
each job runs in a private mount namespace with that tree mounted at /opt/ml
and a / of its own (`sandbox`), so the request's paths stay literal and scripts
may use them, and processing scripts start in / as in SageMaker's images;
otherwise every /opt/ml path in the request (entry point, environment values)
is mapped into the work folder, and processing scripts start in the folder
that would have been their /.

Each job's process environment is the container's (`job_env`): the run's
emulator as its AWS, none of the agent's credentials or Python paths, and
TRAINING_JOB_NAME for training.

The local environments are shared by every repo on the agent: in a namespace
jobs see them (and the rest of mltp's cache, and the pip cache) read-only.
Before each job its environment is checked against the record of its files
(envs.ensure); with no namespace the job could write it, so it is checked
after the job as well, against the record read before it: a job that changed
it fails, and the environment is built again before anything uses it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import click

from .. import algorithms, evaluation_guard, processing_entry
from ..aws import Clients
from ..errors import RunFailed
# CloudWatch Logs groups SageMaker writes job logs to: `wait` reads the tail of
# a failed job's log from there, on AWS and locally alike.
from ..jobs import LOG_GROUPS
from ..outcome import exception_line
from . import envs, job_env, objects, sandbox, spot_interruption

CONTAINER_ROOT = "/opt/ml"
_MISSING_MODULE = re.compile(r"ModuleNotFoundError: No module named '([^'.]+)")
# The toolkit's entry, as the containers' `train` command runs it.
TOOLKIT_MAIN = "sagemaker_training.cli.train"
# Locally the one host is this machine: with SageMaker's 'algo-1' the toolkit
# would wait for its DNS name forever.
LOCAL_HOST = "localhost"
TOOLKIT_LOGGER = "sagemaker-training-toolkit"
TOOLKIT_FAILURE = "Reporting training FAILURE"
JOB_ROLES = {"prep": "preprocessing", "train": "training", "eval": "evaluation"}
READ_ONLY_HINT = "the local environments are read-only to jobs: list the packages a script needs in requirements.txt"
# A spot interruption (--interrupt-spot-after): SageMaker sends SIGTERM and stops
# the instance 120 seconds later; the job then starts again with its checkpoints.
SPOT_GRACE_SECONDS = 120.0


class JobFailed(Exception):
    """The job's FailureReason, as SageMaker would report it."""


def split_s3(uri: str) -> Tuple[str, str]:
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


class LocalJobRunner:
    def __init__(self, clients: Clients, workdir: Path, python: Optional[str] = None,
                 environments: Optional[Dict[str, object]] = None, sandboxed: Optional[bool] = None,
                 logs_dir: Optional[Path] = None, say: Callable[[str], None] = click.echo,
                 interrupt_spot_after: Optional[float] = None):
        """`environments`: step role -> envs.Environment, the interpreter of that
        step's jobs; `python` serves a step without one. `sandboxed`: None probes
        whether jobs can have a private /opt/ml (sandbox.probe). `logs_dir`: where
        each job's log is also kept as `<job>.log` as soon as the job ends (the run's
        report folder, so the report written at the end links every log). `say`:
        where lines about the environments go (a rebuild, a changed environment).
        `interrupt_spot_after`: seconds after which the first spot training job is
        stopped as a spot interruption and started again (local/spot_interruption.py)."""
        self.say = say
        self.clients = clients
        self.workdir = Path(workdir).resolve()
        self.python = python or sys.executable
        self.environments = dict(environments or {})
        self.logs_dir = Path(logs_dir) if logs_dir is not None else None
        if sandboxed is None:
            sandboxed, self.sandbox_reason = sandbox.probe()
        else:
            self.sandbox_reason = "chosen by the caller"
        self.sandboxed = sandboxed
        self._procs: List[subprocess.Popen] = []
        self._lock = threading.Lock()
        self._stopped = False
        self.interrupt_spot_after = interrupt_spot_after
        self.spot_grace_seconds = SPOT_GRACE_SECONDS

    # -------------------------------------------------------------- entry point (emulator hook)

    def __call__(self, kind: str, job_name: str, request: dict, job: object) -> None:
        root = self.workdir / job_name
        if kind == "processing":
            self._processing(job_name, request, root)
        else:
            try:
                self._training(job_name, request, root)
            finally:
                self._record_metrics(job_name, request, job)

    def stop(self) -> None:
        """Ends every job process (the run was stopped or mltp is exiting)."""
        with self._lock:
            self._stopped = True
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                _signal_job(proc, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _signal_job(proc, signal.SIGKILL)

    def _environment(self, job_name: str) -> Tuple[str, Dict[str, str]]:
        """The interpreter of a job's step, and what its environment tells the job."""
        env = self._step_environment(job_name)
        if env is None:
            return self.python, {}
        installed = getattr(env, "requirements", None)
        return env.python, ({"MLTP_REQUIREMENTS_INSTALLED": installed} if installed else {})

    def _step_environment(self, job_name: str):
        role = JOB_ROLES.get(job_name.rsplit("-", 2)[-2] if job_name.count("-") >= 2 else "")
        return self.environments.get(role or "")

    def _ensure(self, job_name: str, after: bool = False) -> None:
        """The job's environment checked against its record (envs.ensure), and
        built again if it changed; every step that shares it gets the new one.
        After a job (no namespace only) a change fails the job."""
        env = self._step_environment(job_name)
        if env is None:
            return
        try:
            checked, changed = envs.ensure(env, say=self.say)
        except RunFailed as exc:
            raise JobFailed(f"ClientError: {exc}")
        if checked is not env:
            with self._lock:
                for role, other in list(self.environments.items()):
                    if other is env:
                        self.environments[role] = checked
        if after and changed:
            raise JobFailed(f"AlgorithmError: {job_name} changed the shared local environment {env.path} ({changed}), "
                            f"which was built again; {READ_ONLY_HINT}")

    def _named(self, python: str) -> str:
        """The interpreter a message names: the user's for an overlay of --python."""
        for env in self.environments.values():
            if env.python == python:
                return getattr(env, "named", None) or python
        return python

    # -------------------------------------------------------------- the two job kinds

    def _processing(self, job_name: str, request: dict, root: Path) -> None:
        for item in request.get("ProcessingInputs", []):
            s3_input = item.get("S3Input")
            if s3_input:
                self._download(s3_input["S3Uri"], self._local(root, s3_input["LocalPath"]))
        outputs = request.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for item in outputs:
            self._local(root, item["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        app = request["AppSpecification"]
        command = [self._map_arg(root, a) for a in app.get("ContainerEntrypoint", [])]
        command += [self._map_arg(root, a) for a in app.get("ContainerArguments", [])]
        python, env = self._environment(job_name)
        if command and Path(command[0]).name.startswith("python"):
            command[0] = python
        env.update({k: self._map_arg(root, v) for k, v in request.get("Environment", {}).items()})
        scripts = [c for c in command[1:] if c.endswith(".py")]
        # mltp's entry (installs requirements.txt) and the guard run the user's script themselves
        entries = ("/" + processing_entry.SHIPPED_AS, "/" + evaluation_guard.SHIPPED_AS)
        while len(scripts) > 1 and scripts[0].endswith(entries):
            scripts = scripts[1:]
        script = scripts[0] if scripts else (command[-1] if command else "")
        self._execute("processing", job_name, command, env, self._processing_cwd(root), request, script=script,
                      python=python)
        for item in outputs:
            local = self._local(root, item["S3Output"]["LocalPath"])
            self._upload_dir(local, item["S3Output"]["S3Uri"])

    def _training(self, job_name: str, request: dict, root: Path) -> None:
        """The container's way: the job's folder as SAGEMAKER_BASE_DIR, the config
        files SageMaker writes, then the toolkit's `train`."""
        raw = request.get("HyperParameters", {})
        decoded = {k: _decode(v) for k, v in raw.items()}
        program = decoded.get("sagemaker_program")
        submit = decoded.get("sagemaker_submit_directory")
        # No script: a built-in algorithm, known by its image (mltp/algorithms), as
        # its container runs in algorithm mode when no entry point is given.
        algorithm = None if program and submit else algorithms.from_image(
            request.get("AlgorithmSpecification", {}).get("TrainingImage", ""))
        if algorithm is None and (not program or not submit):
            raise JobFailed("ClientError: the training job names no sagemaker_program / sagemaker_submit_directory")
        base = self._local(root, CONTAINER_ROOT)
        code = base / "code"
        if algorithm is None:
            archive = root / "sourcedir.tar.gz"
            self._download(submit, archive.parent, single_name=archive.name)
            code.mkdir(parents=True, exist_ok=True)
            with tarfile.open(archive) as tar:  # the toolkit finds the code in place and does not download it
                _safe_extract(tar, code)
        data_config = {}
        for channel in request.get("InputDataConfig", []):
            name = channel["ChannelName"]
            source = channel["DataSource"]["S3DataSource"]
            self._download(source["S3Uri"], base / "input" / "data" / name)
            data_config[name] = {"TrainingInputMode": channel.get("InputMode", "File"),
                                 "S3DistributionType": source.get("S3DataDistributionType", "FullyReplicated"),
                                 "RecordWrapperType": channel.get("RecordWrapperType", "None")}
            if channel.get("ContentType"):
                data_config[name]["ContentType"] = channel["ContentType"]
        instance_type = request.get("ResourceConfig", {}).get("InstanceType", "local")
        resource_config = {
            "current_host": LOCAL_HOST, "hosts": [LOCAL_HOST], "network_interface_name": "lo",
            "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
            "instance_groups": [{"instance_group_name": "homogeneousCluster", "instance_type": instance_type,
                                 "hosts": [LOCAL_HOST]}],
        }
        config_dir = base / "input" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        for name, content in (("hyperparameters.json", raw), ("inputdataconfig.json", data_config),
                              ("resourceconfig.json", resource_config)):
            (config_dir / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
        model_dir = base / "model"
        for folder in (model_dir, base / "output" / "data"):
            folder.mkdir(parents=True, exist_ok=True)
        failure = base / "output" / "failure"
        if failure.exists():
            failure.unlink()
        python, env = self._environment(job_name)
        # In a private namespace the job's folder is /opt/ml: the SM_* paths read as on SageMaker.
        env["SAGEMAKER_BASE_DIR"] = CONTAINER_ROOT if self.sandboxed else str(base)
        env.update({k: self._map_arg(root, v) for k, v in request.get("Environment", {}).items()})
        if algorithm is not None:
            self._run_algorithm(job_name, request, algorithm, base, python, env, failure)
        else:
            self._run_toolkit(job_name, request, program, root, base, code, model_dir, python, env, failure)
        packed = root / "model.tar.gz"
        with tarfile.open(packed, "w:gz") as tar:
            for path in sorted(model_dir.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(model_dir)), recursive=False)
        output_path = request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        bucket, key = split_s3(f"{output_path}/{job_name}/output/model.tar.gz")
        objects.put_file(self.clients.s3, str(packed), bucket, key)

    def _run_toolkit(self, job_name: str, request: dict, program: str, root: Path, base: Path, code: Path,
                     model_dir: Path, python: str, env: Dict[str, str], failure: Path) -> None:
        """A script-mode training job through the toolkit, started in the code
        folder as on SageMaker; a managed spot job is interrupted once when
        --interrupt-spot-after asks, and started again with its checkpoints."""
        command = [python, "-m", TOOLKIT_MAIN]
        cwd = Path(CONTAINER_ROOT) / "code" if self.sandboxed else code
        checkpoints = spot_interruption.Checkpoints.of(self, root, request)
        interrupt = self._spot_interruption(request)
        try:
            if checkpoints:
                checkpoints.restore()
            interrupted = self._execute("training", job_name, command, env, cwd, request, script=program,
                                        python=python, failure_file=failure, interrupt_after=interrupt)
            if interrupted is not None:
                self.say(spot_interruption.notice(job_name, interrupt, self.spot_grace_seconds, checkpoints))
                if checkpoints:
                    checkpoints.save()
                spot_interruption.fresh_instance(base, keep=checkpoints.local if checkpoints else None)
                for folder in (model_dir, base / "output" / "data"):
                    folder.mkdir(parents=True, exist_ok=True)
                if failure.exists():
                    failure.unlink()
                self._execute("training", job_name, command, env, cwd, request, script=program, python=python,
                              failure_file=failure, log_prefix=interrupted + spot_interruption.log_line(job_name),
                              spent=interrupt or 0.0)
            elif interrupt is not None:
                self.say(spot_interruption.not_reached(job_name, interrupt))
        finally:
            if checkpoints:
                checkpoints.save()

    def _run_algorithm(self, job_name: str, request: dict, found, base: Path, python: str, env: Dict[str, str],
                       failure: Path) -> None:
        """A built-in algorithm's local implementation (mltp/algorithms), with the
        job's /opt/ml as its base; its FailureReason is the line it wrote to
        output/failure (ClientError or AlgorithmError), as on SageMaker."""
        algorithm, version = found
        seen = CONTAINER_ROOT if self.sandboxed else str(base)
        command = [python, str(algorithm.program_path()), seen, version]
        try:
            self._execute("training", job_name, command, env, base, request, script=algorithm.program, python=python,
                          failure_file=failure)
        except JobFailed:
            written = failure.read_text(encoding="utf-8", errors="replace").strip() if failure.is_file() else ""
            if written.startswith(("ClientError:", "AlgorithmError:")):
                raise JobFailed(" ".join(written.split())[:1000]) from None
            raise

    def _record_metrics(self, job_name: str, request: dict, job: object) -> None:
        """What SageMaker does with AlgorithmSpecification.MetricDefinitions: the
        job's log read with each regex, the last value of each kept as the job's
        FinalMetricDataList (what DescribeTrainingJob shows, the state machine's
        Gate and the report read). With no definitions the list is empty (the
        emulator's job otherwise holds a made-up one)."""
        from .. import training_metrics

        definitions = (request.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
        log = self.workdir / f"{job_name}.log"
        values: Dict[str, float] = {}
        if definitions and log.is_file():
            try:  # after a failed job too: this must never hide why it failed
                with open(log, encoding="utf-8", errors="replace") as lines:
                    values = training_metrics.last_values(definitions, lines)
            except OSError:
                values = {}
        if job is not None and hasattr(job, "final_metric_data_list"):
            import datetime

            when = getattr(job, "creation_time", None) or datetime.datetime.now(datetime.timezone.utc)
            names = [d.get("Name") for d in definitions]
            job.final_metric_data_list = training_metrics.metric_data_list(values, names, when)

    def _spot_interruption(self, request: dict) -> Optional[float]:
        """The seconds after which this training job is interrupted: once per run,
        and only a managed spot job (EnableManagedSpotTraining)."""
        with self._lock:
            if self.interrupt_spot_after is None or not request.get("EnableManagedSpotTraining"):
                return None
            seconds, self.interrupt_spot_after = self.interrupt_spot_after, None
            return seconds

    # -------------------------------------------------------------- running a script

    def _execute(self, kind: str, job_name: str, command: List[str], extra_env: Dict[str, str], cwd: Path,
                 request: dict, script: Optional[str] = None, python: Optional[str] = None,
                 failure_file: Optional[Path] = None, interrupt_after: Optional[float] = None,
                 log_prefix: str = "", spent: float = 0.0) -> Optional[str]:
        """Runs the job's command to its end. With `interrupt_after`, a spot
        interruption at that time (SIGTERM, SIGKILL after the grace): the job's
        output so far is returned, and the caller starts it again. `log_prefix`:
        the output of an attempt before (kept in the same log); `spent`: seconds
        of MaxRuntimeInSeconds that attempt used."""
        # The container's environment: the emulator as its AWS, no agent paths (job_env).
        env = job_env.job_environment(os.environ, python or self.python, self.clients.endpoint_url,
                                      self.clients.region, training_job=job_name if kind == "training" else None)
        env.update(extra_env)
        env["PYTHONUNBUFFERED"] = "1"
        limit = request.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        if limit is not None and spent:
            limit = max(1.0, limit - spent)
        wait_for = limit
        if interrupt_after is not None and (limit is None or interrupt_after < limit):
            wait_for = interrupt_after
        log_path = self.workdir / f"{job_name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._ensure(job_name)
        started = time.time()
        launch, where = list(command), str(cwd)
        if self.sandboxed:  # the job's own /opt/ml; the working directory is set inside
            launch, env = sandbox.launch(command, self.workdir / job_name / CONTAINER_ROOT.lstrip("/"), str(cwd), env,
                                         read_only=envs.protected_paths(list(self.environments.values())))
            where = str(self.workdir)
        with self._lock:
            if self._stopped:
                raise JobFailed("Stopped: the run was stopped")
            # Its own process group: the toolkit (and the processing entry's pip) start
            # the script as a child, and stopping the job must end that child too.
            proc = subprocess.Popen(launch, cwd=where, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True, errors="replace", start_new_session=True)
            self._procs.append(proc)
        try:
            output, _ = proc.communicate(timeout=wait_for)
        except subprocess.TimeoutExpired:
            if wait_for != limit:  # the spot interruption, before the job's own limit
                output = log_prefix + spot_interruption.stop(proc, self.spot_grace_seconds, _signal_job)
                self._keep_log(log_path, output)
                self._checked_after(proc, job_name)
                return output
            _signal_job(proc, signal.SIGKILL)
            output, _ = proc.communicate()
            output = log_prefix + output
            self._keep_log(log_path, output)
            self._publish_log(kind, job_name, output, started)
            self._checked_after(proc, job_name)
            if self.sandboxed:
                sandbox.tidy(self.workdir / job_name / CONTAINER_ROOT.lstrip("/"))
            raise JobFailed(f"MaxRuntimeExceeded: {job_name} ran longer than {limit} s")
        output = log_prefix + output
        self._keep_log(log_path, output)
        self._publish_log(kind, job_name, output, started)
        self._checked_after(proc, job_name)
        if self.sandboxed:
            sandbox.tidy(self.workdir / job_name / CONTAINER_ROOT.lstrip("/"))
        if proc.returncode != 0:
            script = script or (command[1] if len(command) > 1 else command[0])
            written = None
            if failure_file is not None and failure_file.is_file():
                written = failure_file.read_text(encoding="utf-8", errors="replace")
            raise JobFailed(failure_reason(script, proc.returncode, output, self._named(python or self.python), written))
        return None

    def _keep_log(self, log_path: Path, output: str) -> None:
        """The job's log in its work folder and, as a new file renamed into place
        (never written through a link left there), beside the report."""
        from .. import owned

        data = output.encode("utf-8", errors="replace")
        owned.write_atomic(log_path, data)
        if self.logs_dir is not None:
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            owned.write_atomic(self.logs_dir / log_path.name, data)

    def _checked_after(self, proc: subprocess.Popen, job_name: str) -> None:
        """With no namespace the job could write the shared environment: what is
        left of its process group ends first (a child it left behind could
        write later), then the environment is checked against the record read
        before the job."""
        if self.sandboxed:
            return
        _signal_job(proc, signal.SIGKILL)
        self._ensure(job_name, after=True)

    def _publish_log(self, kind: str, job_name: str, output: str, started: float) -> None:
        """The job's output goes to CloudWatch Logs, where SageMaker puts it."""
        logs = self.clients.logs
        group = LOG_GROUPS[kind]
        stream = f"{job_name}/algo-1-{int(started)}"
        try:
            logs.create_log_group(logGroupName=group)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        try:  # a job of the same name that started in the same second (a retried run) shares it
            logs.create_log_stream(logGroupName=group, logStreamName=stream)
        except logs.exceptions.ResourceAlreadyExistsException:
            pass
        lines = output.splitlines()[-5000:] or ["(no output)"]
        now = int(time.time() * 1000)
        events = [{"timestamp": now, "message": line or " "} for line in lines]
        for start in range(0, len(events), 1000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events[start:start + 1000])

    # -------------------------------------------------------------- S3 and paths

    def _processing_cwd(self, root: Path) -> Path:
        """Where a processing script starts: / as in SageMaker's images (the
        job's own / in its namespace); with no namespace, the folder that would
        be its / (sandbox.root_folder), so what it writes there stays the job's."""
        if self.sandboxed:
            return Path("/")
        folder = sandbox.root_folder(root / CONTAINER_ROOT.lstrip("/"))
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _local(self, root: Path, container_path: str) -> Path:
        if not container_path.startswith(CONTAINER_ROOT):
            raise JobFailed(f"ClientError: local path {container_path} is outside {CONTAINER_ROOT}")
        return root / container_path.lstrip("/")

    def _map_arg(self, root: Path, value: str) -> str:
        """An argument or environment value as the job sees it: literal in a
        private namespace (/opt/ml is the job's folder there), else mapped."""
        if self.sandboxed:
            return value
        return str(self._local(root, value)) if isinstance(value, str) and value.startswith(CONTAINER_ROOT + "/") else value

    def _download(self, uri: str, target: Path, single_name: Optional[str] = None) -> None:
        """S3Prefix semantics: every key under the prefix, relative paths kept; a
        URI naming one object downloads that object into the target folder."""
        bucket, prefix = split_s3(uri)
        s3 = self.clients.s3
        target.mkdir(parents=True, exist_ok=True)
        found = False
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                key = item["Key"]
                rel = key[len(prefix):].lstrip("/") or single_name or key.rsplit("/", 1)[-1]
                if key.endswith("/"):
                    continue
                dest = target / rel
                if not _inside(dest, target):
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                objects.get_file(s3, bucket, key, str(dest))
                found = True
        if not found:
            raise JobFailed(f"ClientError: no data found at {uri}")

    def _upload_dir(self, local: Path, uri: str) -> None:
        bucket, prefix = split_s3(uri)
        prefix = prefix if prefix.endswith("/") or not prefix else prefix + "/"
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            objects.put_file(self.clients.s3, str(path), bucket, prefix + path.relative_to(local).as_posix())


def _signal_job(proc: subprocess.Popen, sig: int) -> None:
    """Signals the job's whole process group (the toolkit and the script it started)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def _decode(value: str):
    """The SageMaker SDK JSON-encodes hyperparameters; the training toolkit decodes them."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def _safe_extract(tar: tarfile.TarFile, target: Path) -> None:
    for member in tar.getmembers():
        dest = target / member.name
        if not _inside(dest, target) or member.issym() or member.islnk():
            raise JobFailed(f"ClientError: sourcedir.tar.gz has an unsafe entry {member.name}")
    tar.extractall(target)


def failure_reason(script: str, code: int, output: str, python: str, failure: Optional[str] = None) -> str:
    """SageMaker-style FailureReason, one line: the exit code and what the script
    died of, with a plain hint when it imports a package that is not installed.
    `failure` is what the training toolkit wrote to /opt/ml/output/failure (on
    AWS SageMaker's FailureReason is made from that file)."""
    name = Path(script).name
    missing = _MISSING_MODULE.search(output)
    if missing:
        package = missing.group(1)
        return (f"AlgorithmError: {name} needs the Python package '{package}', which is not installed for {python} "
                f"(add it to requirements.txt, or run the scripts with a Python that has it: --python or MLTP_PYTHON)")
    kind = (failure or "").split(":", 1)[0].strip()
    if kind == "InstallRequirementsError":
        code_line = re.search(r"ExitCode (\S+)", failure or "")
        reason = processing_entry.pip_reason(output)
        hint = f"; {READ_ONLY_HINT}" if "Read-only file system" in reason else ""
        return (f"AlgorithmError: InstallRequirementsError: requirements.txt failed to install (pip exited with code "
                f"{code_line.group(1) if code_line else code}: {reason}){hint}")
    if failure and kind != "ExecuteUserScriptError":
        return "AlgorithmError: " + " ".join(failure.split())[:1000]
    # One line, like SageMaker's: the exception if the script died of one. The
    # output itself goes to the job's log, whose tail the report shows once.
    if kind == "ExecuteUserScriptError":
        exit_code = re.search(r"ExitCode (\d+)", failure or "")
        code = int(exit_code.group(1)) if exit_code else code
        # What the script printed last, not the toolkit's own report of the failure.
        cut = output.rfind(TOOLKIT_FAILURE)
        output = output[:cut] if cut >= 0 else output
        output = "\n".join(line for line in output.splitlines() if TOOLKIT_LOGGER not in line)
    lines = output.strip().splitlines()
    died_of = exception_line(output) or next((line.strip() for line in reversed(lines) if line.strip()), "no output")
    hint = f" ({READ_ONLY_HINT})" if "[Errno 30] Read-only file system" in died_of else ""
    return f"AlgorithmError: {name} exited with code {code}: {died_of}{hint}"
