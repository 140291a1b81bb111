"""The install record of a local environment (mltp.local.env_record): what it
records, and that every way of changing an environment after its build is
found, by the quick check (sizes, times, inodes) or the full one (SHA-256).

These run on a small tree of real files laid out like a virtualenv; the checks
on real environments, and what happens to a changed one, are in test_envs.py
and test_shared_envs.py."""

import json
import os
from pathlib import Path

import pytest

from mltp.local import env_record

SITE = "lib/python3.11/site-packages"


@pytest.fixture
def env(tmp_path) -> Path:
    root = tmp_path / "build-x"
    (root / SITE / "pkg" / "__pycache__").mkdir(parents=True)
    (root / "bin").mkdir()
    (root / SITE / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / SITE / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"\x00compiled")
    (root / "pyvenv.cfg").write_text("home = /usr/bin\n")
    os.symlink("/usr/bin/python3", root / "bin" / "python")
    os.symlink("lib", root / "lib64")
    env_record.write(root)
    return root


def _check(root: Path, **kwargs) -> str:
    return env_record.check(root, env_record.load(root), **kwargs)


def test_the_record_lists_every_file_and_link_with_its_hash(env):
    data = json.loads((env / env_record.RECORD).read_text())
    entries = data["entries"]
    assert sorted(entries) == ["bin/python", f"{SITE}/pkg/__init__.py", f"{SITE}/pkg/__pycache__/__init__.cpython-311.pyc",
                               "lib64", "pyvenv.cfg"]
    assert entries["bin/python"] == ["l", "/usr/bin/python3"] and entries["lib64"] == ["l", "lib"]
    import hashlib

    assert entries[f"{SITE}/pkg/__init__.py"] == ["f", 10, hashlib.sha256(b"VALUE = 1\n").hexdigest()]
    # A build is fully checked when written: the next use takes the quick check.
    assert _check(env) == "quick"


def test_an_appended_line_is_found_and_named(env):
    with open(env / SITE / "pkg" / "__init__.py", "a") as handle:
        handle.write("import os; os.system('echo owned')\n")
    with pytest.raises(env_record.Changed, match=rf"^{SITE}/pkg/__init__.py changed$"):
        _check(env)


def test_an_edit_of_the_same_size_with_its_mtime_set_back_is_found(env):
    """mtime can be set back (os.utime); ctime cannot, so the quick check sees
    the write, and the full check names the file."""
    path = env / SITE / "pkg" / "__init__.py"
    before = path.stat()
    path.write_text("VALUE = 2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    with pytest.raises(env_record.Changed, match="pkg/__init__.py changed"):
        _check(env)


@pytest.mark.parametrize("added", [f"{SITE}/evil.pth", f"{SITE}/sitecustomize.py",
                                   f"{SITE}/pkg/__pycache__/extra.cpython-311.pyc", "bin/pip-hook"])
def test_a_new_file_is_a_change(env, added):
    (env / added).write_text("import os\n")
    with pytest.raises(env_record.Changed, match=f"^{added} was added$"):
        _check(env)


def test_a_missing_file_and_a_retargeted_link_are_changes(env):
    os.unlink(env / "bin" / "python")
    os.symlink("/tmp/python", env / "bin" / "python")
    with pytest.raises(env_record.Changed, match="^bin/python changed$"):
        _check(env)
    (env / "pyvenv.cfg").unlink()
    with pytest.raises(env_record.Changed, match="^pyvenv.cfg is missing$"):
        _check(env)


def test_a_file_replaced_by_a_link_is_a_change(env):
    path = env / SITE / "pkg" / "__init__.py"
    path.unlink()
    os.symlink("/tmp/elsewhere.py", path)
    with pytest.raises(env_record.Changed, match="pkg/__init__.py changed"):
        _check(env)


def test_a_touched_but_unchanged_file_passes_the_full_check_and_is_remembered(env):
    os.utime(env / "pyvenv.cfg", None)
    assert _check(env) == "full"  # the stat differs: hashed, found equal
    assert _check(env) == "quick"  # and remembered


def test_the_full_check_comes_back_after_a_day(env):
    record = env_record.load(env)
    assert env_record.check(env, record) == "quick"
    later = record.full_at + env_record.FULL_EVERY_SECONDS + 1
    assert env_record.check(env, record, now=later) == "full"
    assert env_record.load(env).full_at == later


def test_a_change_is_found_against_a_record_kept_in_memory_even_if_the_files_on_disk_are_rewritten(env):
    """What the runner does after a job with no namespace: the job could rewrite
    the record and the quick record too; the record read before still holds."""
    before = env_record.load(env)
    path = env / SITE / "pkg" / "__init__.py"
    path.write_text("VALUE = 666\n")
    env_record.write(env)  # the job covers its tracks
    assert _check(env) == "quick"  # the record on disk now agrees
    with pytest.raises(env_record.Changed, match="pkg/__init__.py changed"):
        env_record.check(env, before)


def test_no_record_is_a_change(env):
    (env / env_record.RECORD).unlink()
    with pytest.raises(env_record.Changed, match="install record mltp-record.json is missing"):
        env_record.load(env)


def test_a_missing_quick_record_means_a_full_check(env):
    (env / env_record.SEEN).unlink()
    assert _check(env) == "full"
    assert (env / env_record.SEEN).is_file()


def test_a_read_only_environment_is_checked_without_writing(env):
    """The quick record cannot be written (a cache this process may only
    read): the check still answers, and checks in full next time."""
    os.utime(env / "pyvenv.cfg", None)
    for folder in (env, env / env_record.SEEN):
        os.chmod(folder, 0o555)
    try:
        if os.access(env, os.W_OK):
            pytest.skip("this user writes read-only folders (root)")
        assert _check(env) == "full"
    finally:
        os.chmod(env, 0o755)


# --------------------------------------------------------------------------- the stamps check (a record kept in memory)


@pytest.fixture
def kept(env):
    """A record as a run keeps it: loaded once, checked before each job; after
    one walk that passed the next check takes the folders' stamps."""
    record = env_record.load(env)
    assert env_record.check(env, record) == "quick"
    assert env_record.check(env, record) == "stamps"
    return record


def test_the_stamps_check_finds_an_edit_with_its_mtime_set_back(env, kept):
    path = env / SITE / "pkg" / "__init__.py"
    before = path.stat()
    path.write_text("VALUE = 2\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(env_record.Changed, match=rf"^{SITE}/pkg/__init__.py changed$"):
        env_record.check(env, kept)


@pytest.mark.parametrize("added", [f"{SITE}/evil.pth", f"{SITE}/pkg/__pycache__/extra.cpython-311.pyc",
                                   "bin/pip-hook", f"{SITE}/newpkg/__init__.py"])
def test_the_stamps_check_finds_a_new_file_even_with_its_folder_times_set_back(env, kept, added):
    """A folder's mtime can be set back too, its ctime cannot."""
    path = env / added
    folders = [p for p in [env / SITE, env / SITE / "pkg" / "__pycache__", env / "bin"] if path.parent == p] \
        or [env / SITE]
    before = {folder: folder.stat() for folder in folders}
    path.parent.mkdir(exist_ok=True)
    path.write_text("import os\n")
    for folder, info in before.items():
        os.utime(folder, ns=(info.st_atime_ns, info.st_mtime_ns))
    with pytest.raises(env_record.Changed, match=f"^{added} was added$"):
        env_record.check(env, kept)


def test_the_stamps_check_finds_a_file_renamed_in_place_of_another(env, kept):
    """Same name, same size, its mtime copied: a new inode (and the folder's ctime)."""
    path = env / SITE / "pkg" / "__init__.py"
    other = env / "replacement"
    other.write_text("VALUE = 3\n")
    info = path.stat()
    os.utime(other, ns=(info.st_atime_ns, info.st_mtime_ns))
    os.rename(other, path)
    with pytest.raises(env_record.Changed, match=rf"^{SITE}/pkg/__init__.py changed$"):
        env_record.check(env, kept)


def test_the_stamps_check_finds_a_missing_file_and_a_retargeted_link(env, kept):
    os.unlink(env / "bin" / "python")
    os.symlink("/tmp/python", env / "bin" / "python")
    with pytest.raises(env_record.Changed, match="^bin/python changed$"):
        env_record.check(env, kept)
    os.unlink(env / "bin" / "python")
    os.symlink("/usr/bin/python3", env / "bin" / "python")  # back as it was, a new inode: the full check passes
    assert env_record.check(env, kept) == "full"
    (env / "pyvenv.cfg").unlink()
    with pytest.raises(env_record.Changed, match="^pyvenv.cfg is missing$"):
        env_record.check(env, kept)


def test_a_folder_replaced_by_a_copy_is_walked_again(env, kept):
    """The same entries in a new folder (another inode): the walk decides, and passes on identical files."""
    pkg = env / SITE / "pkg"
    os.rename(pkg, env / "old-pkg")
    import shutil

    shutil.copytree(env / "old-pkg", pkg, copy_function=shutil.copy2)
    shutil.rmtree(env / "old-pkg")
    assert env_record.check(env, kept) == "full"  # new inodes: hashed, found equal
    assert env_record.check(env, kept) == "quick"  # the quick record rewritten: walked once more
    assert env_record.check(env, kept) == "stamps"


def test_the_stamps_check_gives_way_to_the_daily_full_check(env, kept):
    later = kept.full_at + env_record.FULL_EVERY_SECONDS + 1
    assert env_record.check(env, kept, now=later) == "full"
    assert env_record.check(env, kept, full=True) == "full"


def test_the_stamps_check_does_not_outlive_a_failed_check(env, kept):
    (env / SITE / "evil.pth").write_text("import os\n")
    with pytest.raises(env_record.Changed):
        env_record.check(env, kept)
    assert kept.walked is None
    (env / SITE / "evil.pth").unlink()
    assert env_record.check(env, kept) == "quick"  # walked again before any stamps are trusted
