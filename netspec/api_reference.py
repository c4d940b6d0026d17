"""docs/api.md's generated part: the public API's signatures and docstrings (`netspec docs --api`).

Generated from the objects themselves, so the page cannot drift from the code: `netspec docs --api
--check docs/api.md` (a test) fails when a signature or a docstring changed and the page was not
regenerated with `netspec docs --api --write docs/api.md`.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

BEGIN = "<!-- BEGIN GENERATED API: netspec docs --api --write docs/api.md -->"
END = "<!-- END GENERATED API -->"

FUNCTIONS = ("load", "loads", "check")
CLASSES = ("Spec", "Summary", "RunResult", "SpecError", "Diagnostic", "UsageError", "EmitError", "TrainingError")
FIELDS = ("RunOptions",)  # documented by their fields


def reference() -> str:
    """The Markdown of the public API, in the order of `netspec.__all__`'s groups above."""
    import netspec

    parts = [_function(name, getattr(netspec, name)) for name in FUNCTIONS]
    parts += [_class(name, getattr(netspec, name)) for name in CLASSES]
    parts += [_fields(name, getattr(netspec, name)) for name in FIELDS]
    return "\n".join(parts)


def update(text: str) -> str:
    """`text` with its generated part (between the markers) replaced by the current reference."""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError("the document has no generated-API markers")
    return pattern.sub(lambda _: f"{BEGIN}\n\n{reference()}\n{END}", text)


def _function(name: str, func: Any, prefix: str = "netspec.", level: str = "###") -> str:
    return f"{level} `{prefix}{name}{_signature(func)}`\n\n{_doc(func)}\n"


def _signature(func: Any) -> str:
    """The signature as written in the source: annotations unquoted, no `self`."""
    text = re.sub(r"(: |-> )'([^']*)'", r"\1\2", str(inspect.signature(func)))
    return re.sub(r"^\(self,? ?", "(", text)


def _doc(obj: Any) -> str:
    return inspect.cleandoc(obj.__doc__ or "(undocumented)")


def _class(name: str, cls: type) -> str:
    lines = [f"### class `netspec.{name}`\n", _doc(cls), ""]
    if dataclasses.is_dataclass(cls) and not _members(cls):
        lines += [_field_list(cls), ""]
    lines += [_member(name, member, obj) for member, obj in _members(cls)]
    return "\n".join(lines) + "\n"


def _members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties defined by netspec (not inherited from Exception or object)."""
    if not cls.__module__.startswith("netspec"):
        return []
    found = []
    for member, obj in vars(cls).items():
        if member.startswith("_") or not (callable(obj) or isinstance(obj, property)):
            continue
        found.append((member, obj))
    return found


def _member(owner: str, member: str, obj: Any) -> str:
    if isinstance(obj, property):
        return f"- `{owner}.{member}` (property): {_one_paragraph(obj)}"
    return f"- `{owner}.{member}{_signature(obj)}`: {_one_paragraph(obj)}"


def _one_paragraph(obj: Any) -> str:
    return " ".join(_doc(obj).split())


def _fields(name: str, cls: Any) -> str:
    doc = f"The options of a run (`{cls.__module__}.{name}`): the keywords `Spec.run` passes on."
    return f"### class `netspec.{name}`\n\n{doc}\n\n{_field_list(cls)}\n"


def _field_list(cls: Any) -> str:
    rows = [f"- `{f.name}: {f.type}` = `{_default(f)}`" for f in dataclasses.fields(cls)]
    return "\n".join(rows)


def _default(f: dataclasses.Field[Any]) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default) if not callable(f.default) else getattr(f.default, "__name__", "…")
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return repr(f.default_factory())  # type: ignore[misc]
    return "required"
