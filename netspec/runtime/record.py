"""What a run directory records of the run that wrote it, so that it can be continued exactly.

`spec.net` is the spec's source as it was run, with the `--set` overrides listed in a closing
comment, `overrides.json` the same overrides as a list (and the directory of the original spec,
which its relative paths are relative to), `spec.json` the checked IR. `netspec run
RUN_DIR` and `netspec check RUN_DIR` compile `spec.net` with `overrides.json`; `--resume` refuses a
spec whose IR differs from `spec.json` in anything but the run's length (`train.epochs`,
`train.steps`), `train.device` and `train.compile`. Torch-free: `netspec check` reads it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from netspec.ir.nodes import Program
from netspec.language.diagnostics import UsageError
from netspec.language.files import read_bounded, write_atomic

SPEC, OVERRIDES, IR = "spec.net", "overrides.json", "spec.json"
MAX_BYTES = 16 * 2**20
MAY_CHANGE = {("train", "epochs"), ("train", "steps"), ("train", "device"), ("train", "compile"), ("train", "log")}


class ResumeError(Exception):
    """A run directory cannot be resumed with this spec, or is damaged."""


def run_dir_of(path: str) -> Path | None:
    """The run directory that `path` names (the directory, or its spec.json/spec.net), else None."""
    p = Path(path)
    folder = p if p.is_dir() else p.parent if p.name in (IR, SPEC) else None
    return folder if folder is not None and (folder / SPEC).is_file() else None


def recorded(folder: Path) -> tuple[str, list[str], Path]:
    """The spec file and the overrides a run directory was run with, and the directory that the
    spec's relative paths (an `npz("data.npz")`) are relative to."""
    try:
        saved = json.loads(read_bounded(folder / OVERRIDES, MAX_BYTES))
    except FileNotFoundError:
        saved = {"overrides": []}
    except (OSError, ValueError) as e:
        raise UsageError(f"{folder / OVERRIDES} is damaged ({e})") from None
    overrides = saved.get("overrides") if isinstance(saved, dict) else None
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise UsageError(f"{folder / OVERRIDES} is damaged: it should hold a list of overrides")
    spec_dir = saved.get("spec_dir")
    return str(folder / SPEC), overrides, Path(spec_dir) if isinstance(spec_dir, str) else folder


def write(out: Path, source: str | None, overrides: list[str], program: Program, spec_dir: Path | None) -> None:
    """Record the run: the IR, and, when known, the source and the overrides."""
    write_atomic(out / IR, program.model_dump_json(indent=1))
    if source is None:
        return
    note = "".join(f"\n#   --set {o}" for o in overrides)
    trailer = f"\n# recorded by netspec run; overrides (in {OVERRIDES}):{note or ' none'}\n"
    write_atomic(out / SPEC, source.rstrip("\n") + "\n" + trailer)
    where = str(spec_dir.resolve()) if spec_dir else None
    write_atomic(out / OVERRIDES, json.dumps({"overrides": overrides, "spec_dir": where}, indent=1) + "\n")


def check_compatible(out: Path, program: Program) -> None:
    """Refuse to resume `out` with a program that differs from the recorded one."""
    try:
        saved = json.loads(read_bounded(out / IR, MAX_BYTES))
    except FileNotFoundError:
        return  # an older run directory: the checkpoint's own checks still apply
    except (OSError, ValueError) as e:
        raise ResumeError(f"{out / IR} is damaged ({e})") from None
    changes = differences(_plain(saved), _plain(program.model_dump(mode="json")))
    names = (
        [str(n.get("name")) for n in saved.get("networks", []) if isinstance(n, dict)]
        if isinstance(saved, dict)
        else []
    )
    for i, name in enumerate(names):  # `network #1` by the name the spec gives it
        changes = [c.replace(f"network #{i + 1},", f"network {name},") for c in changes]
    if changes:
        shown = "; ".join(changes[:6]) + ("; ..." if len(changes) > 6 else "")
        raise ResumeError(
            f"the run in {out} does not fit this spec: {shown} (only train.epochs, train.steps, "
            "train.device and train.compile may change when resuming)"
        )


def _plain(ir: Any) -> Any:
    """The IR without source positions and derived counts, which do not change what a run computes."""
    if isinstance(ir, dict):  # a layer's input shape follows from the layer before it
        derived = {"span", "constants", "params", "output_shape", *(() if "name" in ir else ("input_shape",))}
        return {k: _plain(v) for k, v in ir.items() if k not in derived}
    if isinstance(ir, list):
        return [_plain(v) for v in ir]
    return ir


def differences(saved: Any, now: Any, where: tuple[str, ...] = ()) -> list[str]:
    """Each place where `now` differs from `saved`, as `path: recorded X, now Y`."""
    if where[:2] in MAY_CHANGE and len(where) == 2:
        return []
    if isinstance(saved, dict) and isinstance(now, dict) and saved.get("kind") == now.get("kind"):
        keys = list(dict.fromkeys([*saved, *now]))
        return [d for k in keys for d in differences(saved.get(k), now.get(k), (*where, str(k)))]
    if isinstance(saved, list) and isinstance(now, list) and len(saved) == len(now):
        return [d for i, (a, b) in enumerate(zip(saved, now)) for d in differences(a, b, (*where, str(i)))]
    if saved == now:
        return []
    return [f"{_name(where)}: recorded {_show(saved)}, now {_show(now)}"]


def _name(where: tuple[str, ...]) -> str:
    if len(where) >= 4 and where[0] == "networks" and where[2] == "steps":
        return f"network #{int(where[1]) + 1}, layer {int(where[3]) + 1}" + "".join(f".{w}" for w in where[4:])
    return ".".join(where) or "the spec"


def _show(value: Any) -> str:
    if isinstance(value, dict) and "kind" in value:
        args = ", ".join(f"{k}={v}" for k, v in value.items() if k not in ("kind", "span"))
        return f"{value['kind']}({args})"
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return json.dumps(value)
