"""What ships and what is refused (issue 9, items 2, 4 and 8): symlinks are
judged by their target, secrets stay out by default, and unreadable or
unencodable files are input errors (exit 2, one line), not tracebacks."""

import builtins
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from mltp import repo as repo_mod
from mltp.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def repo(tmp_path, monkeypatch):
    target = tmp_path / "repo"
    shutil.copytree(FIXTURES / "base", target)
    monkeypatch.chdir(target)
    return target


def validate(*args, tmp_path=None):
    env = {"MLTP_ERROR_FILE": str(tmp_path / "error.txt")} if tmp_path else None
    return CliRunner().invoke(main, ["validate", ".", *args], env=env)


@pytest.mark.parametrize("target", [".env", ".git/config", "deploy.pem", ".aws/credentials", "keys/id_ed25519"])
def test_symlink_to_an_ignored_file_is_not_shipped(repo, target):
    (repo / target).parent.mkdir(parents=True, exist_ok=True)
    (repo / target).write_text("SECRET=1\n")
    os.symlink(target, repo / "settings.txt")
    shipped = [f.relpath for f in repo_mod.list_files(repo)]
    assert "settings.txt" not in shipped and target not in shipped
    result = validate()
    assert result.exit_code == 0, result.output
    assert "4 files to ship" in result.output and "(1 symlink to ignored files skipped)" in result.output


@pytest.mark.parametrize("name", [
    "id_ed25519", "id_ed25519.pub", "id_ecdsa", ".ssh/config", ".aws/config", ".netrc", ".npmrc", ".pypirc",
    ".dockercfg", ".docker/config.json", "credentials.json", "sub/credentials.json", "cert.p12", "cert.pfx",
    "prod.tfvars", "prod.env", ".env.local",
    # issue 20: more credential stores, other version control data, histories, and case variants
    ".git-credentials", ".s3cfg", ".boto", ".pgpass", ".kube/config", "kubeconfig", "deploy/kubeconfig.yaml",
    "terraform.tfstate", "infra/prod.tfstate", "terraform.tfstate.backup", ".databrickscfg", ".vault-token",
    "kaggle.json", ".huggingface/token", ".cache/huggingface/token", "application_default_credentials.json",
    "service-account.json", "release.jks", "app.keystore", "putty.ppk", ".gnupg/pubring.kbx", ".hg/store/data",
    ".svn/entries", ".bash_history", ".zsh_history", ".python_history", "sub/.psql_history",
    ".ENV", "ID_RSA", "Credentials.json", "sub/.Env.local", "CERT.PEM", ".AWS/credentials", ".Git/config",
    "Kaggle.JSON", "PROD.TFSTATE",
])
def test_common_secret_files_are_never_shipped(repo, name):
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text("secret\n")
    assert name not in [f.relpath for f in repo_mod.list_files(repo)]


def test_unreadable_file_is_exit_2_at_validate(repo, tmp_path, monkeypatch):
    """Mode 000 cannot stop root, which runs this suite in CI: the open() of that
    one file fails as it would for an unprivileged agent."""
    (repo / "notes.txt").write_text("private\n")
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if str(file).endswith("notes.txt"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    result = validate(tmp_path=tmp_path)
    assert result.exit_code == 2
    assert result.stderr == ("mltp: 1 problem in the model repo\n"
                             "  notes.txt: cannot be read (Permission denied); fix its permissions or add it "
                             "to .mltpignore\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads mode 000 files")
def test_mode_000_file_is_exit_2(repo):
    (repo / "notes.txt").write_text("private\n")
    os.chmod(repo / "notes.txt", 0)
    result = validate()
    assert result.exit_code == 2 and "notes.txt: cannot be read (Permission denied)" in result.stderr


def test_non_utf8_file_name_is_exit_2(repo, tmp_path):
    with open(os.path.join(os.fsencode(repo), b"caf\xe9.py"), "wb") as handle:
        handle.write(b"x = 1\n")
    result = validate(tmp_path=tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr == ("mltp: 1 problem in the model repo\n"
                             f"  {repo}/caf\\xe9.py: file name is not UTF-8; rename it or add it to .mltpignore\n")
    assert "Traceback" not in result.stderr


def test_non_utf8_file_name_that_is_ignored_is_fine(repo):
    with open(os.path.join(os.fsencode(repo), b"caf\xe9.tmp"), "wb") as handle:
        handle.write(b"x\n")
    (repo / ".mltpignore").write_text("*.tmp\n")
    assert validate().exit_code == 0


def test_config_outside_the_repo_is_not_echoed(repo, tmp_path):
    outside = tmp_path / "elsewhere" / "secret-config.yaml"
    outside.parent.mkdir()
    text = (repo / "config.yaml").read_text().replace("region: eu-west-1", "region: hunter2-SECRET-value")
    text += "schedule: 'hunter3 SECRET * * *'\nsteps:\n  training:\n    instance_type: ml.hunter4.secret\n"
    outside.write_text(text)
    result = validate("--config", str(outside), tmp_path=tmp_path)
    assert result.exit_code == 2
    shown = result.stderr + (tmp_path / "error.txt").read_text()
    assert "SECRET" not in shown and "secret" not in shown.replace("secret-config.yaml", "")
    assert "aws.region: (value not shown: the config file is outside the model repo)" in result.stderr
    # the same file inside the repo: values are shown, as for every other error
    (repo / "config.yaml").write_text(text)
    assert "hunter2-SECRET-value" in validate().stderr


def test_mltp_symlink_is_never_written_through(repo, tmp_path):
    """A committed `.mltp -> elsewhere` must not make `run`/`wait` write reports there."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    os.symlink(elsewhere, repo / ".mltp")
    result = validate()
    assert result.exit_code == 2, result.output
    assert ".mltp: is a symlink" in result.stderr
    assert list(elsewhere.iterdir()) == []
    waited = CliRunner().invoke(main, ["wait", ".", "--run-name", "r1", "--endpoint-url", "http://127.0.0.1:9"])
    assert waited.exit_code == 2 and ".mltp" in waited.stderr
    assert list(elsewhere.iterdir()) == []


def test_secret_files_stay_out_of_the_tarball(repo):
    """What S3 and sourcedir.tar.gz receive is the bundle: none of these is in it."""
    import io
    import tarfile

    from mltp import bundle

    names = [".git-credentials", ".s3cfg", "infra/terraform.tfstate", ".kube/config", "ID_RSA", ".ENV"]
    for name in names:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text("secret\n")
    built = bundle.make(repo_mod.list_files(repo))
    with tarfile.open(fileobj=io.BytesIO(bundle.tarball_bytes(built))) as tar:
        packed = tar.getnames()
    assert not set(names) & set(packed) and "train.py" in packed
    assert not set(names) & {f.relpath for f in built.files}


def _notebook(outputs):
    import json

    cell = {"cell_type": "code", "source": ["print(token)"], "metadata": {}, "execution_count": 1 if outputs else None,
            "outputs": [{"output_type": "stream", "name": "stdout", "text": ["ghp_secret\n"]}] if outputs else []}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def test_a_notebook_with_outputs_is_not_shipped_and_validate_names_it(repo):
    (repo / "notebooks").mkdir()
    (repo / "notebooks" / "eda.ipynb").write_text(_notebook(outputs=True))
    (repo / "clean.ipynb").write_text(_notebook(outputs=False))
    (repo / "broken.IPYNB").write_text("{not json")
    (repo / ".mltpignore").write_text("!notebooks/eda.ipynb\n")  # cannot bring it back
    shipped = [f.relpath for f in repo_mod.list_files(repo)]
    assert "clean.ipynb" in shipped
    assert "notebooks/eda.ipynb" not in shipped and "broken.IPYNB" not in shipped
    result = validate()
    assert result.exit_code == 0, result.output
    assert ("6 files to ship" in result.output
            and "(not shipped: broken.IPYNB, notebooks/eda.ipynb (notebooks with cell outputs; clear the outputs to "
                "ship))" in result.output)


@pytest.mark.parametrize("negation,name", [
    ("!.s3cfg", ".s3cfg"),
    ("!*.tfstate", "infra/terraform.tfstate"),
    ("!ID_RSA", "ID_RSA"),
    ("!.ENV", ".ENV"),
    ("!.env.example", ".env.example"),
    ("!id_rsa.pub", "id_rsa.pub"),
    ("!.git/", ".git/config"),
    ("!.git/\n!.git/config", ".git/config"),
    ("!*.pem", "certs/ca.pem"),
    ("!**/credentials.json", "sub/credentials.json"),
])
def test_mltpignore_cannot_bring_back_what_the_built_in_list_excludes(repo, negation, name):
    (repo / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / name).write_text("secret\n")
    (repo / ".mltpignore").write_text(f"*.tmp\n{negation}\n")
    shipped = [f.relpath for f in repo_mod.list_files(repo)]
    assert name not in shipped and ".mltpignore" in shipped
    result = validate()
    assert result.exit_code == 0, result.output
    assert "5 files to ship" in result.output  # the 4 of the fixture and .mltpignore


def test_mltpignore_negation_still_works_for_its_own_patterns(repo):
    for name in ("data.csv", "keep.csv", "notes.txt", "env.example"):
        (repo / name).write_text("x\n")
    (repo / ".mltpignore").write_text("*.csv\n!keep.csv\n")
    shipped = [f.relpath for f in repo_mod.list_files(repo)]
    assert "keep.csv" in shipped and "notes.txt" in shipped and "data.csv" not in shipped
    assert "env.example" in shipped  # the name docs/contract.md 1.2 suggests instead of .env.example


def test_validate_counts_symlinks_to_built_in_exclusions_a_negation_names(repo):
    """`!.env` does not ship .env, nor a symlink to it: the link is counted as skipped;
    a symlink to a file the user's own `!` brought back ships."""
    (repo / ".env").write_text("SECRET=1\n")
    os.symlink(".env", repo / "settings.txt")
    (repo / "keep.csv").write_text("x\n")
    os.symlink("keep.csv", repo / "link.csv")
    (repo / ".mltpignore").write_text("!.env\n*.csv\n!keep.csv\n!link.csv\n")
    shipped = [f.relpath for f in repo_mod.list_files(repo)]
    assert ".env" not in shipped and "settings.txt" not in shipped
    assert "keep.csv" in shipped and "link.csv" in shipped
    result = validate()
    assert result.exit_code == 0, result.output
    assert "7 files to ship" in result.output and "(1 symlink to ignored files skipped)" in result.output


@pytest.mark.parametrize("secret", [
    "ghp_FAKE0TOKEN0FOR0TESTS0aaaaaaaaaaaaaaaa", "github_pat_FAKE0TOKEN0FOR0TESTS0aaaa", "gho_FAKE0TOKEN0FOR0TESTS0aaaaaaa",
    "AKIAFAKEKEYFORTESTS0", "ASIAFAKEKEYFORTESTS0", "xoxb-0000000000-FAKEFORTESTS", "Zx8kQ2pLm9Rt4Vw7Yb3N",
    "hunter2-Pass-Word-9", "a" * 40,
])
def test_an_unknown_key_that_may_be_a_secret_is_not_echoed(repo, tmp_path, secret):
    """A token pasted where a key goes (`ghp_...: 1`) is named by its line only, for a
    config in the repo and one outside it alike."""
    text = (repo / "config.yaml").read_text()
    text = text.replace("  region: eu-west-1\n", f"  region: eu-west-1\n  {secret}: 1\n")
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text(text)
    (repo / "config.yaml").write_text(text)
    for args in ((), ("--config", str(outside))):
        result = validate(*args, tmp_path=tmp_path)
        assert result.exit_code == 2, result.output
        shown = result.stderr + (tmp_path / "error.txt").read_text()
        assert secret not in shown and secret[:12] not in shown
        assert ":5: aws: an unknown key (name not shown)" in result.stderr


def test_a_plausible_unknown_key_is_still_named(repo):
    text = (repo / "config.yaml").read_text().replace("  region: eu-west-1\n", "  region: eu-west-1\n  Regoin: x\n")
    (repo / "config.yaml").write_text(text)
    assert "config.yaml:5: aws.Regoin: unknown key 'Regoin' (did you mean 'region'?)" in validate().stderr


@pytest.mark.parametrize("token", [
    "ghp_FAKE0TOKEN0FOR0TESTS0aaaaaaaaaaaaaaaa", "github_pat_FAKE0TOKEN0FOR0TESTS0aaaa", "xoxp-0000000000-FAKEFORTESTS",
    "glpat-FAKE0TOKEN0FOR0TESTS0a", "hf_FAKE0TOKEN0FOR0TESTS0aaaaaaaaaaaaaa", "ASIAFAKEKEYFORTESTS0",
])
def test_redaction_knows_other_services_tokens(token):
    from mltp.redaction import redact

    assert token not in redact(f"failed: {token} was refused") and "failed:" in redact(f"failed: {token}")


def _deep_file(repo, key_bytes):
    """A file whose path is `key_bytes` bytes of UTF-8 ('é' is two), in folders of 100 bytes."""
    parts, left = [], key_bytes - len("/data.txt")
    while left > 0:
        chunk = min(left, 100)
        parts.append("é" * (chunk // 2) + "x" * (chunk % 2))
        left -= chunk + 1
    folder = repo.joinpath(*parts)
    folder.mkdir(parents=True)
    (folder / "data.txt").write_text("x\n")
    return (folder / "data.txt").relative_to(repo).as_posix()


def test_a_path_too_long_for_an_s3_key_is_exit_2_naming_the_file(repo, tmp_path):
    """The code prefix of a branch build (up to a 80-character state machine name) plus
    'src/<path>' must fit S3's 1,024 bytes; on AWS the sync failed midway."""
    rel = _deep_file(repo, 950)
    result = validate(tmp_path=tmp_path)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("mltp: 1 problem in the model repo\n")
    assert f"  {rel}: its S3 key would be " in result.stderr and "over S3's limit of 1024" in result.stderr
    assert rel in (tmp_path / "error.txt").read_text()
    # a shorter path fits, whatever the branch
    shutil.rmtree(repo / rel.split("/")[0])
    _deep_file(repo, 800)
    assert validate().exit_code == 0


def test_sync_sends_nothing_for_a_path_too_long(example_repo, aws_env, monkeypatch):
    import boto3

    s3 = boto3.client("s3", region_name="ap-northeast-2", endpoint_url=aws_env)
    bucket = f"keys-{os.getpid()}-{id(example_repo) % 100000}"
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "ap-northeast-2"})
    text = (example_repo / "config.yaml").read_text().replace("bucket: mlops-artifacts", f"bucket: {bucket}")
    (example_repo / "config.yaml").write_text(text)
    _deep_file(example_repo, 900)
    monkeypatch.chdir(example_repo)
    result = CliRunner().invoke(main, ["sync", "."])
    assert result.exit_code == 2, result.output
    assert "its S3 key would be" in result.stderr
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_symlinked_report_folder_of_the_run_is_never_written_through(repo, tmp_path):
    """`.mltp/runs/<run>` committed as a link: `wait` (which writes the report there) is exit 2."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".mltp" / "runs").mkdir(parents=True)
    os.symlink(elsewhere, repo / ".mltp" / "runs" / "r1")
    waited = CliRunner().invoke(main, ["wait", ".", "--run-name", "r1", "--endpoint-url", "http://127.0.0.1:9"])
    assert waited.exit_code == 2, waited.output
    assert ".mltp/runs/r1: is a symlink" in waited.stderr
    assert list(elsewhere.iterdir()) == []
