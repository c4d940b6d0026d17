"""The VS Code extension (editors/vscode): its grammar against every spec, its bundle and commands,
and what its .vsix holds. The checks are node scripts (editors/vscode/test/); these tests run them.
They need node and the extension's node_modules (`npm ci` in editors/vscode, which .ci/run does);
without them they skip, so `make test` passes on a machine without node."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTENSION = ROOT / "editors" / "vscode"
MANIFEST = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
NODE = shutil.which("node")
NPM = shutil.which("npm")

needs_node = pytest.mark.skipif(
    NODE is None or not (EXTENSION / "node_modules" / "vscode-textmate").is_dir(),
    reason="needs node and editors/vscode/node_modules (cd editors/vscode && npm ci)",
)


def _node(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NETSPEC_PYTHON": sys.executable}
    return subprocess.run(
        [NODE or "node", *args], cwd=EXTENSION, env=env, capture_output=True, text=True, timeout=timeout
    )


@contextmanager
def _built() -> Iterator[None]:
    """dist/extension.js bundled from the current sources, not rebuilt by another test meanwhile."""
    with open(Path(tempfile.gettempdir()) / "netspec-vscode-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = subprocess.run([NPM or "npm", "run", "--silent", "build"], cwd=EXTENSION, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        yield


@needs_node
def test_grammar_scopes_every_spec_as_netspecs_lexer_reads_it() -> None:
    done = _node("test/tokenize.test.mjs")
    assert done.returncode == 0, done.stdout + done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    specs = len(list((ROOT / "specs").glob("*.net"))) + len(list((EXTENSION / "test" / "fixtures").glob("*.net")))
    assert summary.startswith(f"{specs} specs, ") and summary.endswith(": 0 failures"), summary
    for kind in ("keyword", "layer", "activation", "number", "string", "comment", "parameter", "variable"):
        assert re.search(rf"\b{kind} [1-9]", summary), (kind, summary)


@needs_node
def test_grammar_test_fails_on_a_grammar_that_misses_tokens(tmp_path: Path) -> None:
    """The check can fail: with `residual` left out of the grammar, each use is reported at its place."""
    spec = tmp_path / "params.net"
    spec.write_text(
        "version 1\nblock B(\n    width, depth=2\n) {\n    dense(width * depth) -> relu\n}\n", encoding="utf-8"
    )
    done = _node("test/tokenize.test.mjs", str(spec))
    assert done.returncode == 0 and " parameter 2, " in done.stdout and " variable 2" in done.stdout, done.stdout
    grammar = EXTENSION / "syntaxes" / "netspec.tmLanguage.json"
    text = grammar.read_text(encoding="utf-8")
    broken = tmp_path / "extension"
    shutil.copytree(EXTENSION / "test", broken / "test")
    (broken / "syntaxes").mkdir()
    (broken / "syntaxes" / grammar.name).write_text(text.replace("|residual", ""), encoding="utf-8")
    (broken / "node_modules").symlink_to(EXTENSION / "node_modules")
    env = {**os.environ, "NETSPEC_PYTHON": sys.executable}
    done = subprocess.run(
        [NODE or "node", "test/tokenize.test.mjs", str(ROOT / "specs" / "resnet_cifar.net")],
        cwd=broken,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "resnet_cifar.net:18:9: `residual` is a keyword (keyword) but VS Code reads" in done.stdout, done.stdout


@needs_node
@pytest.mark.torch
def test_bundle_activates_and_its_commands_run_netspec() -> None:
    with _built():
        done = _node("--check", "dist/extension.js")
        assert done.returncode == 0, done.stderr
        done = _node("test/bundle.test.js")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 commands registered" in done.stdout


@needs_node
def test_vsix_holds_only_what_vscode_loads() -> None:
    with _built():
        done = subprocess.run(
            [NPM or "npm", "run", "--silent", "ls"], cwd=EXTENSION, capture_output=True, text=True, timeout=120
        )
    assert done.returncode == 0, done.stdout + done.stderr
    files = sorted(done.stdout.split())
    assert files == sorted(
        [
            "package.json",
            "language-configuration.json",
            "README.md",
            "LICENSE",
            "CHANGELOG.md",
            "syntaxes/netspec.tmLanguage.json",
            "dist/extension.js",
        ]
    ), files


def test_manifest_points_at_the_bundle_and_declares_the_commands() -> None:
    assert MANIFEST["main"] == "./dist/extension.js"
    assert "dependencies" not in MANIFEST, "everything is bundled: no node_modules in the .vsix"
    commands = {c["command"]: c["title"] for c in MANIFEST["contributes"]["commands"]}
    assert set(commands) == {"netspec.run", "netspec.emit", "netspec.summary", "netspec.graph", "netspec.restartServer"}
    readme = (EXTENSION / "README.md").read_text(encoding="utf-8")
    docs = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    for title in commands.values():
        assert f"netspec: {title}" in readme and f"netspec: {title}" in docs, title
    for setting in MANIFEST["contributes"]["configuration"]["properties"]:
        assert f"`{setting}`" in readme, setting
    assert "](../" not in readme and "](./" not in readme, "the README stands on its own: no relative links"
    for name in ("LICENSE", "CHANGELOG.md", ".vscodeignore", "package-lock.json"):
        assert (EXTENSION / name).is_file(), name
