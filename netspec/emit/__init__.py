"""Stage 3b: `netspec emit` — a checked spec as one standalone PyTorch training script.

The script is rendered from Jinja2 templates in ``netspec/templates/<target>/``, one per
concern (model, data, training loop, command line). This module hands them validated IR
values and a few plain structures derived from them (the model as nested calls, the block
classes, the transforms in the order they apply), never Python source built from spec text:

- every value a template prints goes through a filter — ``lit`` (a Python literal, built
  here from ints, floats, bools, None, strings, tuples and lists and nothing else), ``ident``
  (a checked identifier), ``shape``, ``count`` or ``text`` (a comment- and docstring-safe
  rendering) — and the environment refuses anything printed without one;
- the only other source in a script is netspec's own: the functions and classes of
  netspec/training.py and netspec/modules.py that the spec uses, copied verbatim, so that
  `netspec run` and the script share one implementation of augmentation and metrics.

The output is formatted as ruff formats it with its default settings (88 columns), so
the templates decide line breaks the way ruff would: a call stays on one line when it fits,
and is otherwise split one argument per line with a trailing comma, which ruff keeps.
Adding a target means adding a folder of templates.
"""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Callable

import jinja2
from markupsafe import Markup

from netspec import __version__
from netspec.ir import nodes as ir
from netspec.registry import Layer
from netspec.registry.metrics import monitor_mode
from netspec.registry.transforms import Normalize, RandomCrop
from netspec.runtime import datasets

TARGETS = ("pytorch",)
LINE_LENGTH = 88  # ruff's default: the emitted scripts are formatted for it
PACKAGE = Path(__file__).resolve().parent
VERBATIM = PACKAGE.parent / "verbatim"  # netspec's own code that scripts copy


class EmitError(Exception):
    """The spec cannot be emitted for the target (the message says why)."""


# --- filters: the only way a value reaches a script ---------------------------------------


def literal(value: Any) -> str:
    """`value` as a Python literal, formatted as ruff formats it. Only plain data is accepted:
    None, bools, ints, floats (inf and nan as float("inf") / float("nan")), strings, and tuples
    and lists of those; anything else raises TypeError, whatever its repr would say."""
    kind = type(value)
    if value is None or kind is bool or kind is int:
        return repr(value)
    if kind is float:
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else '-float("inf")'
        return repr(value).replace("e+", "e")  # ruff writes 1e16, not 1e+16
    if kind is str:
        return _string(value)
    if kind is tuple:
        items = [literal(v) for v in value]
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if kind is list:
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"not a literal value: {kind.__name__}")


def _string(s: str) -> str:
    """A string literal with ruff's preferred quotes: double, unless that needs more escapes.
    Every character is escaped as repr escapes it, so a newline, quote or backslash in the
    value stays inside the literal."""
    quote = "'" if s.count('"') > s.count("'") else '"'
    return quote + "".join(_char(ch, quote) for ch in s) + quote


def _char(ch: str, quote: str) -> str:
    if ch == quote:
        return "\\" + ch
    if ch in "'\"":
        return ch
    return repr(ch)[1:-1]


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def identifier(name: Any) -> str:
    """A (dotted) ASCII identifier that is not a keyword; anything else raises."""
    if type(name) is not str or not _IDENT.fullmatch(name) or any(keyword.iskeyword(p) for p in name.split(".")):
        raise TypeError(f"not an identifier: {name!r}")
    return name


def text(value: Any) -> str:
    """Prose for a comment or a docstring: printable characters as they are; quotes,
    backslashes, line breaks and other unprintable characters escaped, so the text can end
    neither the comment nor the docstring."""
    if type(value) is not str:
        raise TypeError(f"not text: {type(value).__name__}")
    return "".join(ch if ch.isprintable() and ch not in '"\\' else _escape(ch) for ch in value)


def _escape(ch: str) -> str:
    return '\\"' if ch == '"' else repr(ch)[1:-1]


def shape(value: Any) -> str:
    """A per-sample shape as the spec writes it: [20, 24, 24]."""
    if type(value) not in (tuple, list) or not all(type(d) is int for d in value):
        raise TypeError(f"not a shape: {value!r}")
    return "[" + ", ".join(str(d) for d in value) + "]"


def count(value: Any) -> str:
    """An integer with thousands separators, for comments: 431,080."""
    if type(value) is not int:
        raise TypeError(f"not a count: {value!r}")
    return f"{value:,}"


def pad(value: Any) -> str:
    """Indentation: `value` spaces."""
    if type(value) is not int or not 0 <= value <= 400:
        raise TypeError(f"not an indentation: {value!r}")
    return " " * value


FILTERS: dict[str, Callable[[Any], str]] = {
    "lit": literal,
    "ident": identifier,
    "text": text,
    "shape": shape,
    "count": count,
    "pad": pad,
}


def _marked(fn: Callable[[Any], str]) -> Callable[[Any], Markup]:
    def render(value: Any) -> Markup:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined: raises, naming what is undefined
        return Markup(fn(value))

    return render


def _printed(value: Any) -> Any:
    """The environment's `finalize`: what `{{ ... }}` may print. Filters and macros return
    Markup; anything else (a raw string, a number) means a template forgot its filter."""
    if isinstance(value, Markup):
        return value
    raise TypeError(f"a template printed {type(value).__name__} {value!r} without a filter (lit, ident, ...)")


@cache
def environment(target: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(PACKAGE / "templates" / target),
        undefined=jinja2.StrictUndefined,
        autoescape=True,  # with `finalize`, makes every printed value pass through a filter
        finalize=_printed,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update({name: _marked(fn) for name, fn in FILTERS.items()})
    env.tests.update({"list": lambda v: type(v) is list, "tuple": lambda v: type(v) is tuple})
    env.globals["LINE_LENGTH"] = LINE_LENGTH
    return env


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
    kind: str = "call"

    @property
    def split(self) -> bool:
        """Whether it must span several lines: a comment inside cannot stay on one line."""
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


def _layer_call(layer: Layer) -> Call:
    assert layer.input_shape is not None
    built = [
        Call(tm.name, [Value(a) for a in tm.args], [(k, Value(v)) for k, v in tm.kwargs.items()])
        for tm in layer.torch_modules(layer.input_shape)
    ]
    call = built[0] if len(built) == 1 else Call("nn.Sequential", built)
    call.shape = layer.output_shape
    return call


def _step_call(step: Any) -> Call:
    """The construction of one IR step, nested exactly as netspec.runtime.build nests modules."""
    if isinstance(step, Layer):
        return _layer_call(step)
    if isinstance(step, ir.BlockUse):
        return Call(
            "nn.Sequential",
            [_step_call(s) for s in step.steps],
            shape=step.output_shape,
            note=f"block {step.name}",
            block=step.name,
            block_args=dict(step.args),
        )
    if isinstance(step, ir.Repeat):
        iterations = [Call("nn.Sequential", [_step_call(s) for s in it]) for it in step.iterations]
        return Call("nn.Sequential", iterations, shape=step.output_shape, note=f"repeat {step.count}")  # type: ignore[arg-type]
    if isinstance(step, ir.Residual):
        body = Call("nn.Sequential", [_step_call(s) for s in step.steps])
        return Call("Residual", [body], shape=step.output_shape)
    raise EmitError(f"cannot emit the step {type(step).__name__}")


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


@dataclass
class _Slot:
    """A value position in a block's body, with its value in each use."""

    values: list[Any]
    hint: str  # the constructor parameter it fills
    default: Any = _NONE


class _Classes:
    """Turns the blocks of a spec into classes, and each network into one."""

    def __init__(self, reserved: set[str]) -> None:
        self.taken = set(reserved)
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
        cls = ModelClass(self.class_name(block), [], [], block=block)
        defaults = {n: _group_default(groups[key]) for key, n in named.items()}
        required: list[tuple[str, Value | None]] = [(n, None) for n, d in defaults.items() if d is _NONE]
        cls.params = required + [(n, Value(d)) for n, d in defaults.items() if d is not _NONE]
        cls.doc = f"The spec's block {block}({', '.join(uses[0].block_args)})."
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
            name = spec_args.get(key) or members[0].hint or "value"
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
        if not all(isinstance(n, Call) for n in nodes):
            return None
        if any(n.func != first.func or len(n.args) != len(first.args) or n.note != first.note for n in nodes):
            return None
        signature = self.params_of(first.func)
        names = [p for p, _ in signature]
        args = []
        for i in range(len(first.args)):
            arg = self._unify([n.args[i] for n in nodes], names[i] if i < len(names) else "")
            if arg is None:
                return None
            args.append(arg)
        defaults = dict(signature)
        order = {p: i for i, p in enumerate(names)}
        keys = sorted(dict.fromkeys(k for n in nodes for k, _ in n.kwargs), key=lambda k: order.get(k, len(order)))
        kwargs = []
        for key in keys:
            default = defaults.get(key, _NONE)
            column = []
            for n in nodes:
                given = dict(n.kwargs)
                if key not in given and default is _NONE:
                    return None
                column.append(given.get(key, Value(default)))
            unified = self._unify(column, key)
            if unified is None:
                return None
            if isinstance(unified, _Slot):
                unified.default = default
            kwargs.append((key, unified))
        same_shape = all(n.shape == first.shape for n in nodes)
        return Call(first.func, args, kwargs, first.shape if same_shape else None, first.note)

    def add_network(self, net: ir.Network, tree: Call) -> ModelClass:
        doc = f"{shape(net.input_shape)} -> {shape(net.output_shape)}, {count(net.params)} parameters."
        cls = ModelClass(self.class_name(net.name), [], tree.args, doc)
        self.classes.append(cls)
        return cls


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


# --- copied source: netspec's own helpers --------------------------------------------------


@dataclass(frozen=True)
class _Definition:
    name: str
    source: str
    uses: frozenset[str]  # the global names it refers to


@cache
def _definitions(module: str) -> dict[str, _Definition]:
    """The top-level functions and classes of netspec/<module>.py, in file order."""
    path = VERBATIM / f"{module}.py"
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    out: dict[str, _Definition] = {}
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            text = "\n".join(_clean(line) for line in lines[start - 1 : node.end_lineno])
            names = frozenset(n.id for n in ast.walk(node) if isinstance(n, ast.Name))
            out[node.name] = _Definition(node.name, text, names)
    return out


def _clean(line: str) -> str:
    """A line without the `# type: ignore` that only netspec's type checker needs."""
    return re.sub(r"\s+# type: ignore(\[[^\]]*\])?$", "", line)


def copied(module: str, wanted: set[str], provided: frozenset[str] = frozenset()) -> list[_Definition]:
    """The definitions `wanted` and those they use, from netspec/<module>.py, in file order;
    except those `provided` by the templates."""
    defs = _definitions(module)
    missing = wanted - set(defs)
    if missing:
        raise EmitError(f"netspec/{module}.py has no {', '.join(sorted(missing))}")
    todo, keep = list(wanted), set()
    while todo:
        name = todo.pop()
        if name not in keep:
            keep.add(name)
            todo += [n for n in defs[name].uses if n in defs and n not in keep | provided]
    return [d for name, d in defs.items() if name in keep]


# --- the script's context ------------------------------------------------------------------

# Every top-level name the templates may define or import, and the modules' classes:
# a network or block named like one of them is given another class name.
SCRIPT_NAMES = frozenset(
    {
        "argparse", "csv", "gzip", "hashlib", "io", "json", "math", "os", "platform", "re", "struct", "sys",
        "tarfile", "time", "urllib", "asdict", "dataclass", "field", "Path", "PurePosixPath", "np", "torch", "nn", "F",
        "save_file", "Image", "SPEC", "SEED", "EPOCHS", "STEPS", "BATCH_SIZE", "EVAL_BATCH_SIZE", "METRICS",
        "METRIC_ARGS", "DATA_FOLDER", "MIRRORS", "SHA256", "CIFAR_URL", "CIFAR_MD5", "CIFAR_FOLDER",
        "DATA_PATH", "criterion", "loss_fn", "download", "read_idx", "read_cifar", "load_data", "find_file",
        "read_csv", "hold_out", "to_tensor", "prepare_data", "State", "train_epoch", "evaluate", "epoch_row",
        "save_checkpoint", "load_checkpoint", "save_weights", "write_metrics", "write_json", "pick_device",
        "parse_args", "main", "IMAGE_SUFFIXES", "read_image", "addition_pairs", "autocast_dtype",
        "RUN_LENGTH_KEYS", "end_of_epoch", "check_finite", "Meter", "ImageFiles", "ImageError", "collate",
        "batches", "DataLoader", "Dataset", "SIZE", "TARGET", "DELIMITER", "X_NAME", "Y_NAME", "SEQ_LEN",
        "SAMPLES", "LOW", "HIGH", "RECORD", "TEST_FILE", "TRAIN_FILES", "fetch_cifar", "is_number", "zipfile",
        "workers", "write_atomic",
    }
)  # fmt: skip

SOURCE_HAS_TEST = {"mnist": True, "fashion_mnist": True, "cifar10": True, "arithmetic": True}
NETSPEC_MODULES = ("Recurrent", "SelfAttention", "Encoder", "Residual")


def emit(program: ir.Program, target: str = "pytorch", spec: str = "spec", script: str | None = None) -> str:
    """The standalone training script of a checked program; `spec` names the spec (its file
    stem), `script` the file the script is written to (for its usage lines)."""
    if target not in TARGETS:
        raise EmitError(f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    if program.train is None or program.dataset is None:
        raise EmitError("a training script needs a `dataset` and a `train` section")
    if program.network(program.train.model) is None:
        raise EmitError(f"the spec has no network `{program.train.model}`")
    context = _context(program, spec, script or f"{spec}.py")
    return environment(target).get_template("script.py.j2").render(context)


def _params(*names: str | None) -> list[tuple[str, None]]:
    return [(n, None) for n in names if n]


def _call(func: str, *args: str | None) -> Call:
    """A call whose arguments are the script's variables of those names."""
    return Call(func, [Param(a) for a in args if a])


def _context(program: ir.Program, spec: str, script: str) -> dict[str, Any]:
    """Everything the templates see: validated IR values and what is derived from them."""
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    net = program.network(train.model)
    assert net is not None
    models = _model_context(program, net.name)
    data = _data_context(dataset)
    training = _training_context(train, net, data["augments"])
    copies = _copied_context(data["transforms"], training["metric_funcs"], models.pop("used_modules"), data["stream"])
    return {"netspec_version": __version__, "spec": spec, "script": script, **models, **data, **training, **copies}


def _model_context(program: ir.Program, model: str) -> dict[str, Any]:
    """A class per network and per reused block, and the netspec modules they call."""
    classes = _Classes(set(SCRIPT_NAMES) | set(NETSPEC_MODULES) | set(dir(builtins)) | set(keyword.kwlist))
    trees = [Call("nn.Sequential", [_step_call(s) for s in n.steps]) for n in program.networks]
    classes.add_blocks(trees)
    model_classes = {n.name: classes.add_network(n, tree) for n, tree in zip(program.networks, trees)}
    calls = [c for cls in classes.classes for call in cls.body for c in call.calls()]
    return {
        "model_class": model_classes[model].name,
        "classes": classes.classes,
        "used_modules": {c.func for c in calls if c.func in NETSPEC_MODULES},
    }


def _data_context(dataset: ir.Dataset) -> dict[str, Any]:
    source = dataset.source
    transforms = _transforms(dataset)
    has_test = SOURCE_HAS_TEST.get(source.kind, False)
    return {
        "dataset": dataset,
        "source": source,
        "has_test": has_test,
        "hold_out": bool(dataset.validation) or not has_test,
        "transforms": transforms,
        "eval_transforms": [t for t in transforms if t["batch"] and t["kind"] in ("random_crop", *STATS)],
        "once_transforms": [t for t in transforms if t["once"]],
        "stream": _streamed(dataset),
        "augments": any(t["batch"] for t in transforms),
        "batch_preprocessing": any(t["batch"] and not t["op"].augment for t in transforms),
        "data_settings": _data_settings(source),
        "idx": _idx(source.kind),
        "cifar": _cifar() if source.kind == "cifar10" else None,
    }


def _training_context(train: ir.Train, net: ir.Network, augments: bool) -> dict[str, Any]:
    metrics = {m.kind: m.arg() for m in train.metrics}
    loss = train.loss
    return {
        "train": train,
        "metric_args": metrics,
        "metric_funcs": [(name, f"_{name}") for name in metrics],
        "meter": _meter(train, net),
        "meter_classes": loss.target != "value",
        "meter_top_k": "top_k" in metrics,
        "binary_threshold": _binary_threshold(loss),
        "loss": loss,
        "loss_wrapper": loss.target == "binary" or (loss.target == "class" and len(net.output_shape) > 1),
        "criterion": _criterion(loss),
        "optimizer_call": _optimizer(train),
        "schedule": train.schedule,
        "scheduler_call": _scheduler(train),
        "precision": train.precision,
        "early_stopping": train.early_stopping,
        "stop_mode": _stop_mode(train),
        **_call_context(train, augments),
    }


def _call_context(train: ir.Train, augments: bool) -> dict[str, Any]:
    """The training loop's and the checkpoints' signatures: only the arguments the spec needs."""
    trained = "compiled" if train.compile else "model"
    scheduler = "scheduler" if train.schedule else None
    amp = ("amp", "scaler") if train.precision != "fp32" else (None, None)
    steps = "steps" if train.steps else None
    train_args = ("model", "optimizer", scheduler, "train", "g", "state", "augment" if augments else None, steps, *amp)
    checkpoint_args = ("out", "model", "optimizer", scheduler, "g", "state")
    train_call = _call("train_epoch", *train_args)
    train_call.args[0] = Param(trained)
    return {
        "trained": trained,
        "train_params": _params(*train_args),
        "train_call": train_call,
        "checkpoint_params": _params(*checkpoint_args),
        "save_call": _call("save_checkpoint", *checkpoint_args),
        "load_params": _params(*checkpoint_args[:-1]),
        "load_call": _call("load_checkpoint", *checkpoint_args[:-1]),
    }


def _copied_context(
    transforms: list[dict[str, Any]], metric_funcs: list[tuple[str, str]], used_modules: set[str], stream: bool
) -> dict[str, Any]:
    """netspec's own augmentation, streaming, metric and module code that the script needs, copied."""
    stream_helpers = {"workers", "collate"} if stream else set()
    helpers = {f for t in transforms for f in t["functions"]} | {f for _, f in metric_funcs} | stream_helpers
    copied_training = copied("training", helpers, provided=frozenset({"Meter"}))  # the template's Meter is trimmed
    copied_modules = copied("modules", used_modules)
    uses = set().union(*(d.uses for d in copied_training + copied_modules))
    return {
        "modules_source": [Markup(d.source) for d in copied_modules],
        "data_helpers": [Markup(d.source) for d in copied_training if d.name in DATA_HELPERS],
        "metric_helpers": [Markup(d.source) for d in copied_training if d.name not in DATA_HELPERS],
        "uses_F": "F" in uses,
        "uses_math": "math" in uses,
    }


def _streamed(dataset: ir.Dataset) -> bool:
    """Image folders stream from disk, as in netspec run, which refuses whole-split statistics on them."""
    if dataset.source.kind != "image_folder":
        return False
    for t in dataset.transforms:
        if t.statistics:
            raise EmitError(
                f"`{t.kind}` computes statistics over the whole training split, but `image_folder` "
                "streams its images from disk; use normalize(mean=..., std=...)"
            )
    return True


DATA_HELPERS = frozenset(
    {"random_flip", "_gather_windows", "random_shift", "random_crop", "center_crop", "random_rotation", "normalize"}
    | {"workers", "collate"}
)
STATS = ("normalize", "standardize")  # transforms whose statistics the script keeps as mean/std


def _meter(train: ir.Train, net: ir.Network) -> Call:
    """The Meter of netspec.runtime.loop.evaluate: the number of classes and the k of top_k, if any."""
    loss = train.loss
    if loss.target == "value":
        return Call("Meter", [])
    classes = 2 if loss.target == "binary" else net.output_shape[-1]
    top_k = tuple(m.arg() for m in train.metrics if m.kind == "top_k")
    return Call("Meter", [Value(classes)] + ([Value(top_k)] if top_k else []))


def _binary_threshold(loss: Any) -> float | None:
    """Where one binary output divides the classes (netspec.runtime.loop.binary_threshold)."""
    if loss.target != "binary":
        return None
    return 0.5 if loss.kind == "bce" else 0.0


def _criterion(loss: Any) -> Call:
    """The torch loss netspec.runtime.loop._loss builds."""
    kwargs: list[tuple[str, Any]] = [(k, Value(v)) for k, v in loss.torch_kwargs().items()]
    kwargs = [(k, Call("torch.tensor", [Value([v.value])]) if k == "pos_weight" else v) for k, v in kwargs]
    return Call(f"nn.{loss.torch_class}", [], kwargs)


def _optimizer(train: ir.Train) -> Call:
    kwargs = [(k, Value(v)) for k, v in train.optimizer.torch_kwargs().items()]
    return Call(f"torch.optim.{train.optimizer.torch_class}", [Call("model.parameters")], kwargs)


def _scheduler(train: ir.Train) -> Call | None:
    """The scheduler of netspec.runtime.loop._scheduler; what follows from the run's length (the
    one-cycle's total steps, the cosine's default period) is the script's variable."""
    schedule = train.schedule
    if schedule is None:
        return None
    name, kwargs = schedule.torch_scheduler(0, 0)
    args: list[tuple[str, Any]] = [(k, Value(v)) for k, v in kwargs.items()]
    if schedule.kind == "onecycle":
        args = [(k, Param("total_steps") if k == "total_steps" else v) for k, v in args]
    if schedule.kind == "cosine" and getattr(schedule, "t_max", None) is None:
        args = [(k, Param("epochs") if k == "T_max" else v) for k, v in args]
    return Call(f"torch.optim.lr_scheduler.{name}", [Param("optimizer")], args)


def _stop_mode(train: ir.Train) -> str | None:
    stop = train.early_stopping
    if stop is None:
        return None
    return stop.mode if stop.mode != "auto" else monitor_mode(stop.monitor)


def _data_settings(source: Any) -> list[tuple[str, Value, str | None]]:
    """The source's parameters as the script's constants: (name, value, comment above)."""
    found = "relative to this script's folder, then to the data root (--data-dir)"
    settings: dict[str, list[tuple[str, Any, str | None]]] = {
        "csv": [("DATA_PATH", "path", found), ("TARGET", "target", None), ("DELIMITER", "delimiter", None)],
        "npz": [("DATA_PATH", "path", found), ("X_NAME", "x", None), ("Y_NAME", "y", None)],
        "text": [("DATA_PATH", "path", found), ("SEQ_LEN", "seq_len", "characters per sample")],
        "arithmetic": [("SAMPLES", "samples", "training pairs"), ("LOW", "low", None), ("HIGH", "high", None)],
        "image_folder": [("DATA_PATH", "path", found)],
    }
    out = [(name, Value(getattr(source, attr)), note) for name, attr, note in settings.get(source.kind, [])]
    if source.kind == "image_folder":
        size = source.size if isinstance(source.size, tuple) else (source.size, source.size)
        out += [("SIZE", Value(size), "[height, width] after resizing")]
        out += [("IMAGE_SUFFIXES", Value(tuple(sorted(datasets.IMAGE_SUFFIXES))), None)]
    return out


def _transforms(dataset: ir.Dataset) -> list[dict[str, Any]]:
    """Each transform, and when it applies, as netspec.runtime.loop._preprocess applies it: until the
    first augmentation, once to every split; from it on, to every training batch, while the
    evaluation splits get its evaluation-time effect (preprocessing, centre crop) once."""
    out: list[dict[str, Any]] = []
    batch = False
    image = dataset.source.task().image
    stats = 0
    for t in dataset.transforms:
        batch = batch or t.augment
        entry: dict[str, Any] = {
            "op": t,
            "kind": t.kind,
            "batch": batch,
            "once": not batch,
            "spec": _spec_text(t),
            "image_check": t.image_only and image is None,
            "functions": _functions(t.kind),
        }
        if t.kind in STATS:
            stats += 1
            suffix = "" if stats == 1 else f"_{stats}"
            entry["mean"], entry["std"] = f"mean{suffix}", f"std{suffix}"
        if isinstance(t, Normalize):
            mean, std = t.mean, t.std
            entry["mean_call"] = Call("torch.tensor", [Value(_stat(mean))])
            entry["std_call"] = Call("torch.tensor", [Value(_stat(std))])
            per_channel = isinstance(mean, tuple) or isinstance(std, tuple)
            entry["per_channel"] = (None if image is None else bool(image)) if per_channel else False
        if isinstance(t, RandomCrop):
            entry["size"] = t.hw()
        out.append(entry)
    return out


def _functions(kind: str) -> set[str]:
    """The functions of netspec/training.py a transform uses."""
    return {
        "normalize": {"normalize"},
        "standardize": {"normalize"},
        "random_flip": {"random_flip"},
        "random_crop": {"random_crop", "center_crop"},
        "random_rotation": {"random_rotation"},
        "random_shift": {"random_shift"},
    }.get(kind, set())


def _stat(value: Any) -> Any:
    return [float(v) for v in value] if isinstance(value, tuple) else float(value)


def _spec_text(op: Any) -> str:
    """How the spec writes a transform, for a comment: normalize(mean=0.1307, std=0.3081)."""
    from netspec.registry.base import format_value

    args = ", ".join(f"{k}={format_value(v)}" for k, v in op.hyper().items())
    return f"{op.kind}({args})" if args else op.kind


def _idx(kind: str) -> dict[str, Any] | None:
    spec = datasets.IDX_SETS.get(kind)
    if spec is None:
        return None
    names = [n for pair in datasets.IDX_FILES.values() for n in pair]
    return {
        "title": spec.title,
        "folder": spec.folder,
        "mirrors": Value(spec.mirrors),
        "sha256": [(n, datasets.CHECKSUMS[f"{spec.folder}/{n}"].sha256) for n in names],
        "files": datasets.IDX_FILES,
    }


def _cifar() -> dict[str, Any]:
    return {
        "url": datasets.CIFAR_URL,
        "md5": datasets.CIFAR_MD5,
        "archive": datasets.CIFAR_ARCHIVE,
        "folder": datasets.CIFAR_FOLDER,
        "train": Value(list(datasets.CIFAR_TRAIN)),
        "test": datasets.CIFAR_TEST,
    }


__all__ = ["TARGETS", "EmitError", "emit", "identifier", "literal", "text"]
