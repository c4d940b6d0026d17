"""netspec.language.files: the one atomic write (unique exclusive temporary file, fsync, the
target's mode kept, rename, nothing left behind on failure, no symlink followed at a temporary
name) and the bounded read; and the commands that write files through it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from netspec import cli
from netspec.language import files
from netspec.language.files import TooLarge, WriteError, read_bounded, write_atomic

UNFORMATTED = "version 1\nlet   x  =  1\n"


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_new_file_and_a_replaced_one(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_atomic(target, "one")
    write_atomic(target, b"two")
    assert target.read_text() == "two" and leftovers(tmp_path) == []


def test_the_targets_mode_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "secret.net"
    target.write_text("old")
    target.chmod(0o600)
    write_atomic(target, "new")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "new"


def test_a_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_atomic(tmp_path / "n.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "n.txt").stat().st_mode) == 0o640


@pytest.mark.parametrize("planted", [".victim.net.tmp", "victim.net.tmp"])
def test_a_symlink_at_a_predictable_temporary_name_is_not_followed(tmp_path: Path, planted: str) -> None:
    secret, victim = tmp_path / "secret.txt", tmp_path / "victim.net"
    secret.write_text("secret")
    victim.write_text("old")
    (tmp_path / planted).symlink_to(secret)
    write_atomic(victim, "new")
    assert secret.read_text() == "secret" and victim.read_text() == "new"
    assert (tmp_path / planted).is_symlink()  # left alone


def test_fmt_write_does_not_follow_a_planted_symlink(tmp_path: Path) -> None:
    secret, victim = tmp_path / "secret.txt", tmp_path / "victim.net"
    secret.write_text("secret")
    victim.write_text(UNFORMATTED)
    (tmp_path / "victim.net.tmp").symlink_to(secret)
    assert cli.main(["fmt", "--write", str(victim)]) == 0
    assert secret.read_text() == "secret" and victim.read_text() != UNFORMATTED


def test_a_symlinked_target_is_written_through_and_stays_a_link(tmp_path: Path) -> None:
    real, link = tmp_path / "real.net", tmp_path / "link.net"
    real.write_text("old")
    link.symlink_to(real)
    write_atomic(link, "new")
    assert link.is_symlink() and real.read_text() == "new" and leftovers(tmp_path) == []


def test_a_device_is_simply_written(tmp_path: Path) -> None:
    write_atomic("/dev/null", "anything")  # not renamed over: /dev/null stays a device
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_failure_names_the_file_and_leaves_no_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "t.txt"
    target.write_text("old")

    def fail(operation: str, path: str) -> None:
        if operation == "replace":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "FAULTS", [fail])
    with pytest.raises(WriteError) as info:
        write_atomic(target, "new")
    assert str(info.value) == f"cannot write {target}: No space left on device"
    assert target.read_text() == "old" and leftovers(tmp_path) == [] and len(list(tmp_path.iterdir())) == 1


def test_a_write_failure_on_the_command_line_says_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.net"
    spec.write_text(UNFORMATTED)

    def full(operation: str, path: str) -> None:
        if operation == "write":
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(files, "FAULTS", [full])
    assert cli.main(["fmt", "--write", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {spec}: No space left on device" in err and "cannot read" not in err
    assert spec.read_text() == UNFORMATTED and leftovers(tmp_path) == []


def test_emit_output_goes_through_the_atomic_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(files, "FAULTS", [lambda op, path: seen.append((op, path))])
    out = tmp_path / "script.py"
    assert cli.main(["emit", "specs/addition.net", "-o", str(out)]) == 0
    assert ("replace", str(out)) in seen and out.read_text().startswith(("#", '"""', "import", "from"))


def test_read_bounded(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert read_bounded(path, 10) == b"x" * 10
    with pytest.raises(TooLarge):
        read_bounded(path, 9)


def test_emit_to_dev_stdout_writes_to_the_pipe() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "netspec", "emit", "specs/addition.net", "-o", "/dev/stdout"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert done.returncode == 0, done.stderr
    assert "def " in done.stdout and done.stderr == ""


@pytest.mark.parametrize("command", ["check", "fmt", "emit", "summary"])
def test_a_device_or_a_fifo_as_a_spec_is_refused_not_read(tmp_path: Path, command: str) -> None:
    """`check /dev/zero` read 4.8 GB before the size limit applied; a FIFO blocked for ever."""
    import subprocess
    import sys

    fifo = tmp_path / "spec.net"
    os.mkfifo(fifo)
    for path in ("/dev/zero", str(fifo), str(tmp_path)):
        done = subprocess.run(
            [sys.executable, "-m", "netspec", command, path], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (path, done.stderr)
        assert f"cannot read {path}: " in done.stderr and "Traceback" not in done.stderr
