"""Printing syntax back as text: expressions with parentheses only where precedence needs
them, calls and section entries as a spec writes them. Used by `fmt`, by diagnostics that
quote a value, and by the language server."""

from __future__ import annotations

from typing import Any

from netspec.language import syntax as st

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2, "//": 2, "%": 2}


def entry(e: st.Entry) -> str:
    text = e.key + (args(e.args) if e.args is not None else "")
    return text + (" " + ", ".join(expr(v) for v in e.values) if e.values else "")


def call(c: st.Call) -> str:
    return c.name + (args(c.args) if c.args is not None else "")


def args(items: tuple[st.Arg, ...]) -> str:
    return "(" + ", ".join((f"{a.name}=" if a.name else "") + expr(a.value) for a in items) + ")"


def expr(e: Any, parent: int = 0) -> str:
    """An expression, with parentheses only where precedence needs them."""
    if isinstance(e, (st.Num, st.Str)):
        return e.raw
    if isinstance(e, st.Const):
        return {True: "true", False: "false", None: "none"}[e.value]
    if isinstance(e, st.Name):
        return e.id
    if isinstance(e, st.Call):
        return call(e)
    if isinstance(e, st.ListExpr):
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    if isinstance(e, st.Neg):
        return _wrap("-" + expr(e.operand, 3), 3, parent)
    prec = _PREC[e.op]
    return _wrap(f"{expr(e.left, prec)} {e.op} {expr(e.right, prec + 1)}", prec, parent)


def _wrap(text: str, prec: int, parent: int) -> str:
    return f"({text})" if prec < parent else text
