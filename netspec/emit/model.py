"""The model as nested constructor calls, and the classes of an emitted script: one per network and per reused block."""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from netspec.emit.errors import EmitError
from netspec.emit.filters import count, literal, shape
from netspec.ir import nodes as ir
from netspec.registry import Layer, TorchModule

# --- the model as nested calls ------------------------------------------------------------


@dataclass
class Value:
    """A constant argument."""

    value: Any
    kind: str = "value"


@dataclass
class Param:
    """A constructor parameter of a block class, used as an argument."""

    name: str
    kind: str = "param"


@dataclass
class Call:
    """One module construction, `nn.Conv2d(1, 20, kernel_size=5)`; containers hold calls."""

    func: str
    args: list[Any] = field(default_factory=list)
    kwargs: list[tuple[str, Any]] = field(default_factory=list)
    shape: tuple[int, ...] | None = None  # output shape, for the trailing comment
    note: str | None = None  # a comment after the opening parenthesis: "repeat 2"
    block: str | None = None  # the spec block this nn.Sequential expands
    block_args: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None  # the nn.Sequential of a `repeat`: its count
    kind: str = "call"

    @property
    def looped(self) -> Call | None:
        """Of a repeat whose iterations are all the same class call, that call: the repeat is then
        built in a loop, `nn.Sequential(*[Stage(64) for _ in range(2)])`."""
        first = self.args[0] if self.repeat and self.args else None
        if not isinstance(first, Call) or first.func == "nn.Sequential" or any(a != first for a in self.args):
            return None
        return first

    @property
    def split(self) -> bool:
        """Whether it must span several lines: a comment inside cannot stay on one line."""
        if self.looped is not None:
            return False
        return self.note is not None or any(isinstance(a, Call) and (a.shape or a.split) for a in self.args)

    def calls(self) -> list[Call]:
        """This call and every call inside it, depth first."""
        out = [self]
        for a in self.args:
            out += a.calls() if isinstance(a, Call) else []
        return out


@dataclass
class ModelClass:
    """`class NAME(nn.Sequential)` whose __init__ passes `body` to nn.Sequential."""

    name: str
    params: list[tuple[str, Value | None]]  # name, default
    body: list[Call]
    doc: str | None = None
    block: str | None = None  # the spec block it is the class of
    tied: bool = False  # a network with an output layer tied to its token embedding


def _layer_call(layer: Layer) -> Call:
    assert layer.input_shape is not None
    built = [_module_call(tm) for tm in layer.torch_modules(layer.input_shape)]
    call = built[0] if len(built) == 1 else Call("nn.Sequential", built)
    call.shape = layer.output_shape
    return call


def _module_call(tm: TorchModule) -> Call:
    """A module's construction, inside `init_normal(...)` when it has GPT-2's initialisation."""
    call = Call(tm.name, [Value(a) for a in tm.args], [(k, Value(v)) for k, v in tm.kwargs.items()])
    return Call("init_normal", [call], [(k, Value(v)) for k, v in tm.init.items()]) if tm.init else call


def step_call(step: Any) -> Call:
    """The construction of one IR step, nested exactly as netspec.runtime.build nests modules."""
    if isinstance(step, Layer):
        return _layer_call(step)
    if isinstance(step, ir.BlockUse):
        return Call(
            "nn.Sequential",
            [step_call(s) for s in step.steps],
            shape=step.output_shape,
            note=f"block {step.name}",
            block=step.name,
            block_args=dict(step.args),
        )
    if isinstance(step, ir.Repeat):  # each iteration a class when they build the same structure
        iterations = [_iteration(it) for it in step.iterations]
        note = f"repeat {step.count}"
        return Call("nn.Sequential", iterations, shape=step.output_shape, note=note, repeat=step.count)  # type: ignore[arg-type]
    if isinstance(step, ir.Residual):
        body = Call("nn.Sequential", [step_call(s) for s in step.steps])
        return Call("Residual", [body], shape=step.output_shape)
    raise EmitError(f"cannot emit the step {type(step).__name__}")


def _iteration(steps: list[Any]) -> Call:
    """One iteration of a repeat, as netspec.runtime.build builds it: its one step's call (of a block,
    the block's class), else a class of the iteration's own."""
    if len(steps) == 1:
        return step_call(steps[0])
    return Call("nn.Sequential", [step_call(s) for s in steps], block=REPEAT)


@cache
def _signature(func: str) -> list[tuple[str, Any]]:
    """(name, default) of a torch.nn or netspec.verbatim.modules constructor's parameters; default is
    _NONE when it has none."""
    import inspect

    from netspec.runtime.build import resolve

    params = inspect.signature(resolve(func)).parameters.values()
    return [
        (p.name, _NONE if p.default is inspect.Parameter.empty else p.default)
        for p in params
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


_NONE = object()
REPEAT = "#repeat"  # the block of a repeat's iterations, until grouped by structure ("#repeat0", ...)


@dataclass
class _Slot:
    """A value position in a block's body, with its value in each use."""

    values: list[Any]
    hint: str  # the constructor parameter it fills
    default: Any = _NONE


class Classes:
    """Turns the blocks of a spec into classes, and each network into one."""

    def __init__(self, reserved: set[str], spec_names: frozenset[str] = frozenset()) -> None:
        self.taken = set(reserved)
        self.spec_names = spec_names  # of the spec's networks and blocks, which keep their names
        self.classes: list[ModelClass] = []
        self.by_name: dict[str, ModelClass] = {}

    def class_name(self, wanted: str) -> str:
        name = wanted
        while name in self.taken:
            name += "_"
        self.taken.add(name)
        return name

    def params_of(self, func: str) -> list[tuple[str, Any]]:
        cls = self.by_name.get(func)
        if cls is not None:
            return [(n, _NONE if d is None else d.value) for n, d in cls.params]
        try:
            return _signature(func)
        except (ValueError, TypeError):
            return []

    def add_blocks(self, trees: list[Call]) -> None:
        """A class per spec block whose uses all build the same structure, innermost first."""
        _group_repeats(trees)
        uses: dict[str, list[Call]] = {}
        for tree in trees:
            for call in tree.calls():
                if call.block is not None:
                    uses.setdefault(call.block, []).append(call)
        done: set[str] = set()
        while len(done) < len(uses):
            ready = [b for b in uses if b not in done and not any(self._inner_blocks(u) - done for u in uses[b])]
            for name in ready:
                self._block_class(name, uses[name])
                done.add(name)
        first_use = list(uses)  # the classes in the order the spec first uses their blocks
        self.classes.sort(key=lambda c: first_use.index(c.block) if c.block in first_use else len(first_use))

    @staticmethod
    def _inner_blocks(use: Call) -> set[str]:
        return {c.block for c in use.calls()[1:] if c.block is not None}

    def _block_class(self, block: str, uses: list[Call]) -> None:
        template = self._unify(uses, "")
        if template is None:
            return  # the uses differ in structure: each stays an inline nn.Sequential
        slots = [s for s in _walk_slots(template)]
        groups: dict[tuple[str, ...], list[_Slot]] = {}
        for slot in slots:
            groups.setdefault(tuple(literal(v) for v in slot.values), []).append(slot)
        named = self._name_params(groups, uses)
        cls = ModelClass(self._block_name(block), [], [], block=block)
        defaults = {n: _group_default(groups[key]) for key, n in named.items()}
        required: list[tuple[str, Value | None]] = [(n, None) for n, d in defaults.items() if d is _NONE]
        cls.params = required + [(n, Value(d)) for n, d in defaults.items() if d is not _NONE]
        cls.doc = f"The spec's block {block}({', '.join(uses[0].block_args)})."
        if block.startswith(REPEAT):
            cls.doc = "The body of a `repeat`, built once per iteration."
        by_key = {key: n for key, n in named.items()}
        assert isinstance(template, Call)
        cls.body = [_fill(c, groups, by_key) for c in template.args]
        self.classes.append(cls)
        self.by_name[cls.name] = cls
        for i, use in enumerate(uses):
            values = {n: _slot_value(groups[key], i) for key, n in named.items()}
            use.func, use.note, use.block = cls.name, None, None
            use.args = [Value(values[n]) for n, d in cls.params if d is None]
            use.kwargs = [
                (n, Value(values[n])) for n, d in cls.params if d is not None and literal(values[n]) != literal(d.value)
            ]

    def _block_name(self, block: str) -> str:
        name = "Stage" if block.startswith(REPEAT) else block
        while name in self.spec_names - {block}:
            name += "_"
        return self.class_name(name)

    def _name_params(self, groups: dict[tuple[str, ...], list[_Slot]], uses: list[Call]) -> dict[Any, str]:
        """Parameter names for the slot groups whose value differs between uses: the block's own
        parameter when it carries the same values, else the constructor parameter it fills."""
        spec_args: dict[tuple[str, ...], str] = {}
        for arg in uses[0].block_args:
            try:
                spec_args.setdefault(tuple(literal(u.block_args.get(arg)) for u in uses), arg)
            except TypeError:
                continue
        taken = {"self"} | self.taken | set(dir(builtins))
        named: dict[Any, str] = {}
        for key, members in groups.items():
            if len(set(key)) == 1:
                continue  # the same in every use: written inline
            hints = [m.hint for m in members if m.hint] if not uses[0].block_args else []
            name = spec_args.get(key) or min(hints, key=len, default="") or members[0].hint or "value"
            while name in taken or keyword.iskeyword(name):
                name += "_"
            taken.add(name)
            named[key] = name
        return named

    def _unify(self, nodes: list[Any], hint: str) -> Any:
        """One body with _Slots where the uses' values sit, or None when their structure differs."""
        first = nodes[0]
        if all(isinstance(n, Value) for n in nodes):
            return _Slot([n.value for n in nodes], hint)
        if not all(isinstance(n, Call) and _same_call(n, first) for n in nodes):
            return None
        signature = self.params_of(first.func)
        names = [p for p, _ in signature] + [""] * len(first.args)
        args = [self._unify([n.args[i] for n in nodes], names[i]) for i in range(len(first.args))]
        kwargs = self._unify_kwargs(nodes, signature)
        if None in args or kwargs is None:
            return None
        same_shape = all(n.shape == first.shape for n in nodes)
        return Call(first.func, args, kwargs, first.shape if same_shape else None, first.note, repeat=first.repeat)

    def _unify_kwargs(self, nodes: list[Call], signature: list[tuple[str, Any]]) -> list[tuple[str, Any]] | None:
        """The keyword arguments of calls to one constructor, unified; a keyword some calls leave to
        its default has the default in those."""
        defaults = dict(signature)
        order = {p: i for i, (p, _) in enumerate(signature)}
        keys = sorted(dict.fromkeys(k for n in nodes for k, _ in n.kwargs), key=lambda k: order.get(k, len(order)))
        kwargs = []
        for key in keys:
            default = defaults.get(key, _NONE)
            given = [dict(n.kwargs) for n in nodes]
            if default is _NONE and any(key not in g for g in given):
                return None
            unified = self._unify([g.get(key, Value(default)) for g in given], key)
            if unified is None:
                return None
            if isinstance(unified, _Slot):
                unified.default = default
            kwargs.append((key, unified))
        return kwargs

    def add_network(self, net: ir.Network, tree: Call) -> ModelClass:
        doc = f"{shape(net.input_shape)} -> {shape(net.output_shape)}, {count(net.params)} parameters."
        cls = ModelClass(self.class_name(net.name), [], tree.args, doc)
        cls.tied = any(c.func == "TiedLinear" for c in tree.calls())
        self.classes.append(cls)
        return cls


def _same_call(n: Call, first: Call) -> bool:
    """Calls of one constructor with as many positional arguments (of a repeat, as many iterations)."""
    return (n.func, len(n.args), n.note, n.repeat) == (first.func, len(first.args), first.note, first.repeat)


def _structure(call: Call) -> tuple[Any, ...]:
    """What two calls share when they differ in values only."""
    args = tuple(_structure(a) if isinstance(a, Call) else a.kind for a in call.args)
    kwargs = tuple((k, _structure(v) if isinstance(v, Call) else v.kind) for k, v in call.kwargs)
    return call.func, call.note, call.repeat, args, kwargs


def _group_repeats(trees: list[Call]) -> None:
    """The iterations of repeats as uses of one class per structure: "#repeat0", "#repeat1", ..."""
    groups: dict[tuple[Any, ...], str] = {}
    for call in (c for tree in trees for c in tree.calls()):
        if call.block == REPEAT:
            call.block = groups.setdefault(_structure(call), f"{REPEAT}{len(groups)}")


def _walk_slots(node: Any) -> list[_Slot]:
    if isinstance(node, _Slot):
        return [node]
    if isinstance(node, Call):
        return [s for a in node.args for s in _walk_slots(a)] + [s for _, v in node.kwargs for s in _walk_slots(v)]
    return []


def _group_default(slots: list[_Slot]) -> Any:
    """The default of a parameter: the constructor default that every slot it fills shares."""
    defaults = {literal(s.default) if s.default is not _NONE else None for s in slots}
    if len(defaults) != 1 or None in defaults or slots[0].default is _NONE:
        return _NONE
    try:
        literal(slots[0].default)
    except TypeError:
        return _NONE
    return slots[0].default


def _slot_value(slots: list[_Slot], use: int) -> Any:
    return slots[0].values[use]


def _fill(node: Any, groups: dict[tuple[str, ...], list[_Slot]], names: dict[Any, str]) -> Any:
    if isinstance(node, _Slot):
        key = tuple(literal(v) for v in node.values)
        return Param(names[key]) if key in names else Value(node.values[0])
    if isinstance(node, Call):
        node.args = [_fill(a, groups, names) for a in node.args]
        node.kwargs = [(k, _fill(v, groups, names)) for k, v in node.kwargs]
    return node
