"""Golden-file tests of diagnostics: what `netspec check` prints for specs with one mistake each.

Each ``tests/golden/diagnostics/NAME.net`` is a short, realistic spec with one error (or, for
``warning_*.net``, one warning). ``NAME.txt`` is the text report (no colour) and ``NAME.json``
the ``--format json`` report, both exactly as `netspec check` prints them when run from the
repository root. After an intended change to a message, `make golden` (UPDATE_GOLDEN=1)
rewrites them; review the diff like any other change.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from netspec.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.net"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

# Lark's names for terminals, which must never reach a user.
LARK_INTERNALS = re.compile(
    r"__ANON|__IGNORE|\$END|\b_NL\b|\b(?:L|R)(?:PAR|SQB|BRACE)\b|\bSEMICOLON\b|\bCOMMA\b|"
    r"\bEQUAL\b|\b(?:NAME|INT|FLOAT|STRING)\b"
)
COUNT_LINE = re.compile(r"\d+ errors?, \d+ warnings?")


def relative(path: Path) -> str:
    """The path as a user in the repository root types it (forward slashes on every OS)."""
    return path.relative_to(ROOT).as_posix()


def run_check(
    path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """`netspec check PATH --format FMT` in-process, from the repository root, with default settings."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("NETSPEC_MAX_MEMORY", raising=False)
    capsys.readouterr()
    code = main(["check", relative(path), "--format", fmt])
    out, err = capsys.readouterr()
    assert err == "", err
    return code, out


def compare_or_update(golden: Path, actual: str) -> None:
    if UPDATE:
        golden.write_bytes(actual.encode("utf-8"))
        return
    if not golden.exists():
        pytest.fail(f"{relative(golden)} is missing; run `make golden` to create it")
    expected = golden.read_bytes().decode("utf-8")
    assert actual == expected, f"{relative(golden)} differs; if the change is intended, run `make golden`"


def message_kind(message: str) -> str:
    """A message with its names and numbers blanked: `unknown layer `_``."""
    return re.sub(r"\d[\d,.]*", "N", re.sub(r"`[^`]*`", "`_`", message))


def check_text_form(text: str, path: str, diags: list[dict[str, object]]) -> None:
    """Every report begins `path:line:col: severity[code]: message` and agrees with the JSON."""
    blocks = text.rstrip("\n").split("\n\n")
    assert COUNT_LINE.fullmatch(blocks[-1]), blocks[-1]
    reports = blocks[:-1]
    assert len(reports) == len(diags)
    for block, d in zip(reports, diags):
        head, *rest = block.split("\n")
        assert head.startswith(f"{path}:{d['line']}:{d['column']}: "), head
        assert head.endswith(f"{d['severity']}[{d['code']}]: {d['message']}"), head
        for line in rest:  # excerpt and hint lines sit behind the line-number gutter
            assert re.match(r"(\d+| +) [|=]", line), line
        assert rest[-1].endswith(f"hint: {d['hint']}") if d["hint"] else "hint:" not in block


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_diagnostics_match_golden_files(
    case: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text_code, text = run_check(case, "text", monkeypatch, capsys)
    json_code, raw = run_check(case, "json", monkeypatch, capsys)
    compare_or_update(case.with_suffix(".txt"), text)
    compare_or_update(case.with_suffix(".json"), raw)

    diags = json.loads(raw)
    path = relative(case)
    assert diags, "each golden spec must produce at least one diagnostic"
    assert len(diags) == 1, "each golden spec shows one mistake; a second diagnostic is a follow-up error"
    assert all(d["file"] == path for d in diags)
    errors = [d for d in diags if d["severity"] == "error"]
    assert text_code == json_code == (1 if errors else 0)
    assert bool(errors) != case.stem.startswith("warning_"), "only warning_*.net files may check without errors"
    check_text_form(text, path, diags)
    for d in diags:
        assert 1 <= d["line"] <= d["end_line"] and d["column"] >= 1, d
        assert not LARK_INTERNALS.search(f"{d['message']} {d['hint'] or ''}"), d


def test_every_golden_output_has_its_spec() -> None:
    outputs = sorted(GOLDEN.glob("*.txt")) + sorted(GOLDEN.glob("*.json"))
    stale = [p for p in outputs if not p.with_suffix(".net").exists()]
    if UPDATE:
        for p in stale:
            p.unlink()
        return
    assert not stale, f"golden outputs without a spec (run `make golden`): {[p.name for p in stale]}"


def test_golden_specs_cover_many_kinds_of_diagnostics() -> None:
    from netspec.ir.pipeline import compile_file

    diags = [d for case in CASES for d in compile_file(str(case)).diagnostics]
    codes = {d.code for d in diags}
    kinds = {(d.code, message_kind(d.message)) for d in diags}
    assert len(CASES) >= 35
    assert len(codes) >= 20, sorted(codes)
    assert len(kinds) >= 30, sorted(kinds)
    assert {d.severity for d in diags} == {"error", "warning"}
