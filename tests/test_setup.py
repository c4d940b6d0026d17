"""Set-up in two commands: `make run` and `make test` on a fresh clone create `.venv` (torch's
CPU build first, then netspec), and `make run` trains MNIST when its data is at hand or can be
downloaded, else addition.net, saying which and why. Checked with `make -n` (nothing is installed)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from netspec.runtime import quickstart

ROOT = Path(__file__).resolve().parent.parent
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make")


def _dry_run(tmp_path: Path, target: str, *variables: str) -> list[str]:
    """`make -n TARGET` in a fresh clone (the Makefile and pyproject.toml, no .venv)."""
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "VIRTUAL_ENV"))}
    done = subprocess.run(["make", "-n", target, *variables], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def _index(lines: list[str], text: str) -> int:
    return next(i for i, line in enumerate(lines) if text in line)


@needs_make
@pytest.mark.parametrize("target", ["run", "test"])
def test_a_fresh_clone_gets_a_venv_with_the_cpu_torch_first(tmp_path: Path, target: str) -> None:
    lines = _dry_run(tmp_path, target)
    venv = _index(lines, "-m venv .venv")
    torch = _index(lines, "pip install -q torch==2.13.0")
    netspec = _index(lines, 'pip install -q -e ".[dev,all]"')
    assert venv < torch < netspec
    assert "--index-url" not in lines[torch]  # pip's own configuration: CI machines reach only PyPI and local wheels
    cpu = _dry_run(tmp_path, target, "TORCH_INDEX=https://download.pytorch.org/whl/cpu")
    assert "--index-url https://download.pytorch.org/whl/cpu" in cpu[_index(cpu, "pip install -q torch==2.13.0")]
    after = lines[netspec + 1 :]
    assert all(".venv/bin/python" in line for line in after if line.startswith((".venv", "python")))


@needs_make
def test_make_run_trains_the_quickstart_and_passes_the_data_dir(tmp_path: Path) -> None:
    assert _dry_run(tmp_path, "run")[-1] == ".venv/bin/python -m netspec.runtime.quickstart"
    last = _dry_run(tmp_path, "run", "DATA_DIR=/data")[-1]
    assert last == ".venv/bin/python -m netspec.runtime.quickstart --data-dir /data"


@needs_make
def test_make_test_runs_lint_types_and_the_suite_with_the_venv(tmp_path: Path) -> None:
    lines = _dry_run(tmp_path, "test")
    assert [line for line in lines if line.startswith(".venv/bin/python -m") and "pip" not in line] == [
        ".venv/bin/python -m ruff check netspec tests bench",
        ".venv/bin/python -m ruff format --check netspec tests bench",
        ".venv/bin/python -m mypy",
        ".venv/bin/python -m pytest -n 2 -q",
    ]


def test_ci_calls_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    commands = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "make test"
    assert not any("pip install" in c or "venv" in c for c in commands)  # make test sets it up


def _mnist(root: Path) -> None:
    folder = root / "mnist"
    folder.mkdir(parents=True)
    for pair in quickstart.IDX_FILES.values():
        for name in pair:
            (folder / name).write_bytes(b"")


def test_the_quickstart_trains_mnist_when_its_files_are_there(tmp_path: Path) -> None:
    _mnist(tmp_path)
    run_args, why = quickstart.choose(tmp_path, online=False)
    assert run_args[0] == "specs/mnist.net" and why == f"MNIST is in {tmp_path}"


def test_the_quickstart_downloads_mnist_when_it_can(tmp_path: Path) -> None:
    run_args, why = quickstart.choose(tmp_path, online=True)
    assert run_args[0] == "specs/mnist.net" and "can be downloaded" in why


def test_the_quickstart_falls_back_to_addition_offline(tmp_path: Path) -> None:
    run_args, why = quickstart.choose(tmp_path, online=False)
    assert run_args == ["specs/addition.net"]
    assert "cannot be downloaded" in why and "addition.net generates its data" in why


def test_the_data_root_is_the_option_then_the_environment_then_shared_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, shared = tmp_path / "main", tmp_path / "shared" / "data"
    repo.mkdir()
    shared.mkdir(parents=True)
    monkeypatch.delenv("NETSPEC_DATA", raising=False)
    assert quickstart.data_root(None, repo) == shared
    monkeypatch.setenv("NETSPEC_DATA", str(tmp_path / "env"))
    assert quickstart.data_root(None, repo) == tmp_path / "env"
    assert quickstart.data_root(str(tmp_path / "opt"), repo) == tmp_path / "opt"


# --- the docs agree with the project ------------------------------------------------------------


def _code(text: str) -> list[str]:
    """Lines of netspec code without comments and blank lines, spaces collapsed."""
    lines = (" ".join(line.split("#")[0].split()) for line in text.splitlines())
    return [line for line in lines if line and line != "version 1"]


def test_the_language_guides_example_is_specs_mnist_net() -> None:
    guide = (ROOT / "docs" / "language.md").read_text()
    example = guide.split("```\n", 1)[1].split("```", 1)[0]
    assert example.startswith("# specs/mnist.net")
    assert _code(example) == _code((ROOT / "specs" / "mnist.net").read_text())


def test_the_readmes_timings_are_measured_figures_not_claims() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "60 seconds" not in readme and "in seconds" not in readme
    assert "<!-- MEASURE:" not in readme  # every timing was measured and is stated with its machine
    assert readme.count("Measured on") >= 2


def test_every_path_in_the_readmes_how_it_is_built_table_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How it is built", 1)[1].split("### Dependencies", 1)[0]
    assert "docs/architecture.md" in section
    table = [line for line in section.splitlines() if line.startswith("| ") and "netspec/" in line]
    assert len(table) >= 10
    for line in table:
        where = line.split("|")[2]
        paths = [p for p in re.findall(r"`([^`]+)`", where) if "/" in p or p.endswith(".py")]
        folder = ""
        for path in paths:
            folder = str(Path(path).parent) if "/" in path else folder  # `syntax.py` after `netspec/language/parse.py`
            full = ROOT / (path if "/" in path else f"{folder}/{path}")
            assert full.exists() or list(ROOT.glob(path)), f"{path} in: {line}"


def test_the_neovim_guide_uses_vim_lsp_config_and_the_default_mappings() -> None:
    guide = (ROOT / "docs" / "editors.md").read_text()
    neovim = guide.split("## Neovim", 1)[1].split("## Helix", 1)[0]
    assert 'require("lspconfig")' not in neovim.replace(
        '`require("lspconfig").<name>.setup({})` form is deprecated', ""
    )
    assert 'vim.lsp.config("netspec"' in neovim and 'vim.lsp.enable("netspec")' in neovim
    assert "`<C-]>` jumps to" in neovim
    assert 'vim.keymap.set("n", "gd", vim.lsp.buf.definition' in neovim  # gd is not mapped by default


def test_the_quickstart_says_which_spec_and_why_then_runs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(quickstart, "can_download", lambda timeout=5.0: False)
    monkeypatch.setattr(quickstart.subprocess, "call", lambda command: calls.append(command) or 0)
    assert quickstart.main(["--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("quickstart: training specs/addition.net: MNIST is not in ")
    assert out[1] == f"quickstart: netspec run specs/addition.net --data-dir {tmp_path}"
    assert calls[0][1:] == ["-m", "netspec", "run", "specs/addition.net", "--data-dir", str(tmp_path)]
