"""Stage 2: syntax tree -> IR, with every semantic error found in one pass.

Resolves constants, expands blocks and repeats, binds arguments through the registry,
infers shapes and parameter counts, and checks the dataset and train sections
against the network. Errors never stop the pass; they make the result ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from netspec.ir import nodes as ir
from netspec.ir.values import INVALID, Binder, CallValue, Evaluator, Symbol, describe_value
from netspec.language import syntax as st
from netspec.language.diagnostics import Diagnostic, Severity, has_errors, make
from netspec.language.span import Shape, Span
from netspec.language.suggest import did_you_mean
from netspec.registry import LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TRANSFORMS, Problem
from netspec.registry.base import Op, Registry, fmt_shape, numel
from netspec.registry.layers import Layer
from netspec.registry.metrics import EarlyStopping
from netspec.registry.sources import Task

GiB = 1 << 30
MAX_LAYERS = 100_000  # after expanding blocks and repeats
MAX_BLOCK_DEPTH = 32
MAX_BODY_DEPTH = 64  # bodies inside bodies, through blocks (as braces nest in one body); keeps the IR serializable
TOP = Span.at(1, 1, 1, 2)
OTHER_REGISTRIES: dict[str, Registry[Any]] = {
    "loss": LOSSES,
    "optimizer": OPTIMIZERS,
    "schedule": SCHEDULES,
    "metric": METRICS,
    "source": SOURCES,
    "transform": TRANSFORMS,
}


@dataclass(frozen=True)
class Options:
    max_memory: int = 4 * GiB  # bytes; a spec estimated to need more is an error


@dataclass
class Trace:
    """What the checker learned per source span: for hover, summary lines and the LSP."""

    layers: list[tuple[Span, Layer]] = field(default_factory=list)
    constants: dict[str, tuple[Span, Any]] = field(default_factory=dict)
    networks: dict[str, ir.Network] = field(default_factory=dict)
    inputs: dict[str, Span] = field(default_factory=dict)  # network name -> its `input` line


def check(module: st.Module, options: Options = Options()) -> tuple[ir.Program | None, list[Diagnostic]]:
    """Check a parsed spec. Returns the IR (None when there are errors) and all diagnostics."""
    checker = Checker(options)
    program = checker.run(module)
    return program, checker.diagnostics


class Checker:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self.evaluator = Evaluator(self.report)
        self.binder = Binder(self.evaluator, self.report)
        self.constants: dict[str, Any] = {}
        self.blocks: dict[str, st.Block] = {}
        self.trace = Trace()
        self._stack: list[tuple[str, Span]] = []  # block uses being expanded
        self._layer_count = 0
        self._depth = 0  # bodies being lowered, one inside the other

    def report(
        self, code: str, message: str, span: Span, hint: str | None = None, severity: Severity = "error"
    ) -> None:
        """Record a diagnostic once (a block used twice reports its own error once)."""
        if self._stack and span.origin is None:
            name, use = self._stack[-1]
            message += f" (in block `{name}` used at line {use.line})"
        key = (code, span.line, span.column, message.split(" (in block")[0])
        if key not in self._seen:
            self._seen.add(key)
            self.diagnostics.append(make(code, message, span, hint, severity))

    # --- top level ------------------------------------------------------------------------

    def run(self, module: st.Module) -> ir.Program | None:
        self._version(module)
        self._declare(module)
        networks = [n for n in (self._network(x) for x in module.items if isinstance(x, st.Network)) if n]
        sections = self._sections(module)
        dataset = self._dataset(sections["dataset"]) if "dataset" in sections else None
        train = self._train(sections["train"], module) if "train" in sections else None
        self._missing(module, sections)
        if train and dataset:
            self._cross(train, dataset)
        self._memory(networks, train, dataset)
        if has_errors(self.diagnostics):
            return None
        return ir.Program(
            version=ir.FORMAT_VERSION,
            constants=_jsonable(self.constants),
            networks=networks,
            dataset=dataset,
            train=train,
        )

    def _version(self, module: st.Module) -> None:
        for i, item in enumerate(module.items):
            if not isinstance(item, st.Version):
                continue
            if i != 0:
                self.report("NS071", "`version` must be the first statement", item.span)
            elif item.number.value != ir.FORMAT_VERSION:
                self.report(
                    "NS070",
                    f"unsupported format version {item.number.value}; this netspec reads version {ir.FORMAT_VERSION}",
                    item.number.span,
                    "upgrade netspec",
                )

    def _declare(self, module: st.Module) -> None:
        """Constants (in order) and block definitions; duplicates and shadowing are errors."""
        defined: dict[str, Span] = {}
        for item in module.items:
            if isinstance(item, (st.Let, st.Block, st.Network)):
                self._unique(item.name, item.name_span, defined)
            if isinstance(item, st.Let):
                self._let(item)
            elif isinstance(item, st.Block):
                self._block(item)

    def _unique(self, name: str, span: Span, defined: dict[str, Span]) -> None:
        if name in defined:
            self.report(
                "NS021", f"`{name}` is already defined at line {defined[name].line}", span, "give it another name"
            )
        elif name in LAYERS.entries:
            self.report("NS021", f"`{name}` is a built-in layer and cannot be redefined", span, "give it another name")
        defined.setdefault(name, span)

    def _let(self, item: st.Let) -> None:
        value = self.evaluator.eval(item.value, self.constants)
        if isinstance(value, Symbol):
            self.evaluator.unknown_name(value, self.constants)
            value = INVALID
        elif isinstance(value, CallValue):
            self.report("NS014", "a constant cannot be a call", item.value.span)
            value = INVALID
        self.constants[item.name] = value
        self.trace.constants[item.name] = (item.name_span, value)

    def _block(self, item: st.Block) -> None:
        seen: set[str] = set()
        for p in item.params:
            if p.name in seen:
                self.report("NS021", f"parameter `{p.name}` appears twice", p.span)
            seen.add(p.name)
        self.blocks.setdefault(item.name, item)

    def _sections(self, module: st.Module) -> dict[str, st.Section]:
        found: dict[str, st.Section] = {}
        for item in module.items:
            if isinstance(item, st.Section):
                if item.kind in found:
                    self.report(
                        "NS031",
                        f"a spec has one `{item.kind}` section; this is a second one",
                        item.span,
                        f"the first is at line {found[item.kind].span.line}",
                    )
                found.setdefault(item.kind, item)
        return found

    def _missing(self, module: st.Module, sections: dict[str, st.Section]) -> None:
        if not any(isinstance(x, st.Network) for x in module.items):
            self.report(
                "NS035", "the spec defines no network", TOP, "add one, e.g. `network Net { input [4]; dense(2) }`"
            )
        if "train" in sections and "dataset" not in sections:
            self.report("NS035", "the `train` section needs a `dataset` section", sections["train"].span)
        elif "train" not in sections and any(isinstance(x, st.Network) for x in module.items):
            self.report(
                "NS036",
                "no `train` section: `netspec run` needs one",
                TOP,
                "add `train { loss ... optimizer ... epochs ... }`",
                "warning",
            )

    # --- networks -------------------------------------------------------------------------

    def _network(self, net: st.Network) -> ir.Network | None:
        steps = net.body.steps
        if not steps or not isinstance(steps[0], st.Input):
            if not any(isinstance(s, st.Input) for s in steps):  # a late `input` is reported where it is
                self.report(
                    "NS042",
                    f"network `{net.name}` has no `input` shape",
                    net.name_span,
                    "make its first line the shape of one sample, e.g. `input [1, 28, 28]`",
                )
            self._lower(steps, None, self.constants)  # still check its layers' arguments
            return None
        shape = self._input_shape(steps[0])
        self.trace.inputs[net.name] = steps[0].span
        lowered, out = self._lower(steps[1:], shape, self.constants)
        if shape is None or out is None or lowered is None:
            return None
        node = ir.Network(
            name=net.name,
            span=net.span,
            input_shape=shape,
            output_shape=out,
            params=sum(s.params or 0 for s in lowered),
            steps=lowered,
        )
        self.trace.networks[net.name] = node
        return node

    def _input_shape(self, item: st.Input) -> Shape | None:
        value = self.evaluator.eval(item.shape, self.constants)
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if (
            isinstance(value, tuple)
            and value
            and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)
        ):
            return value
        if value is not INVALID:
            self.report(
                "NS043",
                f"`input` needs a shape such as [1, 28, 28], got {describe_value(value)}",
                item.shape.span,
                "list the per-sample dimensions (batch excluded) as positive integers",
            )
        return None

    def _lower(
        self, steps: tuple[st.Step, ...], shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[list[Any] | None, Shape | None]:
        """Lower steps from an input shape. Returns (IR steps or None on error, output shape)."""
        out: list[Any] | None = []
        self._depth += 1
        try:
            for step in steps:
                nodes, shape = self._step(step, shape, scope)
                if out is not None and nodes is not None:
                    out.extend(nodes)  # not `out + nodes`: quadratic in a long body
                else:
                    out = None
        finally:
            self._depth -= 1
        return out, shape

    def _step(self, step: st.Step, shape: Shape | None, scope: dict[str, Any]) -> tuple[list[Any] | None, Shape | None]:
        if isinstance(step, st.Chain):
            nodes: list[Any] | None = []
            for call in step.calls:
                node, shape = self._call(call, shape, scope)
                if nodes is not None and node is not None:
                    nodes.append(node)
                else:
                    nodes = None
            return nodes, shape
        if isinstance(step, (st.Repeat, st.Residual)) and self._too_deep(step.span):
            return None, None
        if isinstance(step, st.Repeat):
            return self._repeat(step, shape, scope)
        if isinstance(step, st.Residual):
            return self._residual(step, shape, scope)
        if self._stack:
            self.report("NS044", "`input` belongs on the first line of a network, not inside a block", step.span)
        else:
            self.report(
                "NS044",
                "`input` must be the first line of the network",
                step.span,
                "move it above the layers; a network has one `input`",
            )
        return None, shape

    def _call(self, call: st.Call, shape: Shape | None, scope: dict[str, Any]) -> tuple[Any, Shape | None]:
        if self._layer_count > MAX_LAYERS:  # blocks of blocks can expand exponentially: stop expanding
            return None, None
        if call.name in self.blocks:
            return self._block_use(self.blocks[call.name], call, shape, scope)
        cls = LAYERS.get(call.name)
        if cls is None:
            self._unknown_layer(call)
            return None, None
        self._layer_count += 1
        if self._layer_count > MAX_LAYERS:
            self._too_many_layers(call.span)
            return None, None
        op = self.binder.bind(cls, call.args, call.span, scope, "layer")
        if op is None or shape is None:
            return None, None
        return self._infer(op, call, shape)

    def _infer(self, op: Any, call: st.Call, shape: Shape) -> tuple[Any, Shape | None]:
        try:
            out = op.infer(shape)
        except Problem as p:
            message = p.message if fmt_shape(shape) in p.message else f"{p.message} (input {fmt_shape(shape)})"
            self.report("NS040", message, call.span, p.hint)
            return None, None
        node = op.model_copy(update={"input_shape": shape, "output_shape": out, "params": op.count(shape)})
        self.trace.layers.append((call.span, node))
        return node, out

    def _unknown_layer(self, call: st.Call) -> None:
        for what, registry in OTHER_REGISTRIES.items():
            if call.name in registry.entries:
                article = "an" if what[0] in "aeiou" else "a"
                self.report(
                    "NS010",
                    f"`{call.name}` is {article} {what}, not a layer",
                    call.name_span,
                    f"use it in the {'dataset' if what in ('source', 'transform') else 'train'} section",
                )
                return
        names = LAYERS.names() + list(self.blocks)
        hint = did_you_mean(call.name, names) or "see `netspec docs` for the list of layers"
        self.report("NS010", f"unknown layer `{call.name}`", call.name_span, hint)

    def _block_use(
        self, block: st.Block, call: st.Call, shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[Any, Shape | None]:
        if any(name == block.name for name, _ in self._stack) or len(self._stack) >= MAX_BLOCK_DEPTH:
            self.report("NS022", f"block `{block.name}` uses itself", call.span, "blocks cannot be recursive")
            return None, None
        if self._too_deep(call.span):
            return None, None
        args = self._block_args(block, call, scope)
        if args is None:
            return None, None
        self._stack.append((block.name, call.span))
        try:
            steps, out = self._lower(block.body.steps, shape, {**self.constants, **args})
        finally:
            self._stack.pop()
        if steps is None or shape is None or out is None:
            return None, out
        return ir.BlockUse(
            span=call.span,
            name=block.name,
            args=_jsonable(args),
            steps=steps,
            input_shape=shape,
            output_shape=out,
            params=_params(steps),
        ), out

    def _block_args(self, block: st.Block, call: st.Call, scope: dict[str, Any]) -> dict[str, Any] | None:
        names = [p.name for p in block.params]
        bound: dict[str, Any] = {}
        ok = True
        for i, arg in enumerate(call.args or ()):
            name = arg.name if arg.name is not None else (names[i] if i < len(names) else None)
            if name is None or name not in names or name in bound:
                ok = False
                self._bad_block_arg(block, arg, name, bound)
                continue
            bound[name] = self._block_value(arg.value, scope)
            ok = ok and bound[name] is not INVALID
        return self._block_defaults(block, call, bound) if ok else None

    def _bad_block_arg(self, block: st.Block, arg: st.Arg, name: str | None, bound: dict[str, Any]) -> None:
        names = [p.name for p in block.params]
        if name is None:
            self.report(
                "NS013",
                f"block `{block.name}` takes {len(names)} argument{'s' * (len(names) != 1)}",
                arg.span,
                f"its parameters: {', '.join(names) or 'none'}",
            )
        elif name in bound:
            self.report("NS016", f"`{name}` is given twice", arg.span)
        else:
            self.report(
                "NS011",
                f"block `{block.name}` has no parameter `{name}`",
                arg.name_span or arg.span,
                did_you_mean(name, names) or f"its parameters: {', '.join(names) or 'none'}",
            )

    def _block_value(self, e: st.Expr, scope: dict[str, Any]) -> Any:
        value = self.evaluator.eval(e, scope)
        if isinstance(value, CallValue):
            self.report("NS014", "a block argument cannot be a call", e.span)
            return INVALID
        return value

    def _block_defaults(self, block: st.Block, call: st.Call, bound: dict[str, Any]) -> dict[str, Any] | None:
        for p in block.params:
            if p.name in bound:
                continue
            if p.default is None:
                from netspec.tools.fmt import expr

                params = (q.name if q.default is None else f"{q.name}={expr(q.default)}" for q in block.params)
                self.report(
                    "NS012",
                    f"block `{block.name}` needs `{p.name}`",
                    call.span,
                    f"write it as `{block.name}({', '.join(params)})`",
                )
                return None
            bound[p.name] = self._block_value(p.default, {**self.constants, **bound})
            if bound[p.name] is INVALID:
                return None
        return bound

    def _repeat(
        self, step: st.Repeat, shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[list[Any] | None, Shape | None]:
        count = self.evaluator.eval(step.count, scope)
        if not (isinstance(count, int) and not isinstance(count, bool) and count > 0):
            if count is not INVALID:
                self.report(
                    "NS045", f"`repeat` needs a positive integer count, got {describe_value(count)}", step.count.span
                )
            self._lower(step.body.steps, None, scope)
            return None, None
        iterations: list[list[Any]] | None = []
        start = shape
        before = self._layer_count
        for i in range(count):
            # After one iteration the total is foreseeable: `repeat 100000000 { ... }` fails at once.
            if self._layer_count > MAX_LAYERS or (
                i == 1 and self._layer_count + (self._layer_count - before) * (count - 1) > MAX_LAYERS
            ):
                self._too_many_layers(step.span)
                return None, None
            mark = self._layer_count
            steps, shape = self._lower(step.body.steps, shape, scope)
            self._layer_count = max(self._layer_count, mark + 1)  # an empty body counts too, so loops stay bounded
            if iterations is not None and steps is not None:
                iterations.append(steps)  # not `iterations + [steps]`: quadratic in the count
            else:
                iterations = None
            if shape is None:
                break
        if iterations is None or start is None or shape is None:
            return None, shape
        node = ir.Repeat(
            span=step.span,
            count=count,
            iterations=iterations,
            input_shape=start,
            output_shape=shape,
            params=sum(_params(it) for it in iterations),
        )
        return [node], shape

    def _too_deep(self, span: Span) -> bool:
        """Whether a body opened at ``span`` would nest too deeply (reported once); the IR stays serializable."""
        if self._depth < MAX_BODY_DEPTH:
            return False
        if not any(d.code == "NS022" and "levels deep" in d.message for d in self.diagnostics):
            self.report(
                "NS022",
                f"blocks, repeats and residuals are nested more than {MAX_BODY_DEPTH} levels deep",
                span,
                "flatten some of the blocks",
            )
        return True

    def _too_many_layers(self, span: Span) -> None:
        """Report the layer limit once, at the outermost block use that crossed it."""
        if any(d.code == "NS060" and "expands to more than" in d.message for d in self.diagnostics):
            return
        stack, self._stack = self._stack, []
        try:
            where = stack[0][1] if stack else span
            self.report(
                "NS060",
                f"the network expands to more than {MAX_LAYERS:,} layers",
                where,
                "use fewer or smaller repeats and blocks",
            )
        finally:
            self._stack = stack

    def _residual(
        self, step: st.Residual, shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[list[Any] | None, Shape | None]:
        steps, out = self._lower(step.body.steps, shape, scope)
        if shape is None or out is None or steps is None:
            return None, out if shape is None else None
        if out != shape:
            self.report(
                "NS046",
                f"a residual body must keep the shape: it maps {fmt_shape(shape)} to "
                f"{fmt_shape(out)}, and x + f(x) needs them equal",
                step.span,
                "keep channels and size inside the residual, or move the change outside it",
            )
            return None, None
        return [
            ir.Residual(span=step.span, steps=steps, input_shape=shape, output_shape=out, params=_params(steps))
        ], out

    # --- dataset and train sections -------------------------------------------------------

    def _entries(
        self,
        section: st.Section,
        model: type[ir.Node],
        handlers: dict[str, Callable[[st.Entry], Any]],
        extra_keys: list[str],
    ) -> tuple[dict[str, Any], dict[str, Span]]:
        """Turn entries into field values; ``handlers`` parse the keys that hold registry calls."""
        values: dict[str, Any] = {}
        spans: dict[str, Span] = {}
        keys = [k for k in model.model_fields if k not in ("kind", "span", "name")]
        for entry in section.entries:
            if entry.key in handlers and entry.key in keys:
                if entry.key in values:
                    self.report("NS031", f"`{entry.key}` is given twice", entry.key_span)
                    continue
                value = handlers[entry.key](entry)
            elif entry.key in keys:
                if entry.key in values:
                    self.report("NS031", f"`{entry.key}` is given twice", entry.key_span)
                    continue
                value = self._scalar(entry, model)
            elif entry.key in handlers:
                handlers[entry.key](entry)
                continue
            else:
                self._unknown_key(entry, section.kind, keys + extra_keys)
                continue
            if value is not INVALID:
                values[entry.key] = value
                spans[entry.key] = entry.span
        return values, spans

    def _unknown_key(self, entry: st.Entry, kind: str, keys: list[str]) -> None:
        hint = did_you_mean(entry.key, keys)
        if hint is None and entry.key in LAYERS.entries:
            hint = "layers belong in a `network` block"
        self.report(
            "NS030",
            f"unknown key `{entry.key}` in the {kind} section",
            entry.key_span,
            hint or "valid keys: " + ", ".join(keys[:12]) + ("..." if len(keys) > 12 else ""),
        )

    def _scalar(self, entry: st.Entry, model: type[ir.Node]) -> Any:
        """`key value`; a bare `key` means true for a flag (`compile`)."""
        if entry.args is not None:
            self.report(
                "NS032",
                f"`{entry.key}` takes a value, written without parentheses",
                entry.span,
                f"write `{entry.key} VALUE`",
            )
            return INVALID
        if not entry.values:
            if model.model_fields[entry.key].annotation is bool:
                return True
            self.report("NS032", f"`{entry.key}` needs a value", entry.span)
            return INVALID
        if len(entry.values) > 1:
            self.report("NS032", f"`{entry.key}` takes one value", entry.values[1].span)
            return INVALID
        value = self.evaluator.eval(entry.values[0], self.constants)
        if isinstance(value, CallValue):
            self.report("NS014", f"`{entry.key}` cannot be a call", entry.values[0].span)
            return INVALID
        return str(value) if isinstance(value, Symbol) else value

    def _registry_value(self, registry: Registry[Any], entry: st.Entry, value_expr: st.Expr | None) -> Any:
        """`loss cross_entropy`, `loss cross_entropy(label_smoothing=0.1)`, `metrics top_k(k=3)`."""
        if value_expr is None:
            self.report(
                "NS032",
                f"`{entry.key}` needs a {registry.what}",
                entry.span,
                f"for example `{entry.key} {registry.names()[0]}`",
            )
            return INVALID
        value = self.evaluator.eval(value_expr, {}) if isinstance(value_expr, (st.Name, st.Call)) else None
        if isinstance(value, Symbol):
            name, args, name_span = str(value), None, value_expr.span
        elif isinstance(value, CallValue):
            name, args, name_span = value.call.name, value.call.args, value.call.name_span
        else:
            self.report(
                "NS032",
                f"`{entry.key}` needs a {registry.what} name, got "
                f"{describe_value(self.evaluator.eval(value_expr, self.constants))}",
                value_expr.span,
                f"one of: {', '.join(registry.names())}",
            )
            return INVALID
        return self._bind_named(registry, name, args, name_span, value_expr.span)

    def _bind_named(self, registry: Registry[Any], name: str, args: Any, name_span: Span, span: Span) -> Any:
        cls = registry.get(name)
        if cls is None:
            self.report(
                "NS010",
                f"unknown {registry.what} `{name}`",
                name_span,
                did_you_mean(name, registry.names()) or f"one of: {', '.join(registry.names())}",
            )
            return INVALID
        op = self.binder.bind(cls, args, span, self.constants, registry.what)
        return INVALID if op is None else op

    def _one(self, registry: Registry[Any]) -> Callable[[st.Entry], Any]:
        def handler(entry: st.Entry) -> Any:
            if entry.args is not None:
                self.report(
                    "NS032",
                    f"write `{entry.key} NAME(...)`, not `{entry.key}(...)`",
                    entry.span,
                    f"for example `{entry.key} {registry.names()[0]}`",
                )
                return INVALID
            if len(entry.values) > 1:
                self.report("NS032", f"`{entry.key}` takes one {registry.what}", entry.values[1].span)
            return self._registry_value(registry, entry, entry.values[0] if entry.values else None)

        return handler

    def _dataset(self, section: st.Section) -> ir.Dataset | None:
        transforms: list[Any] = []

        def transform(entry: st.Entry) -> Any:
            if entry.values:
                self.report(
                    "NS032",
                    f"`{entry.key}` takes arguments in parentheses",
                    entry.values[0].span,
                    f"write `{TRANSFORMS.entries[entry.key].signature()}`",
                )
                return INVALID
            op = self._bind_named(TRANSFORMS, entry.key, entry.args, entry.key_span, entry.span)
            if op is not INVALID:
                transforms.append(op)
            return op

        handlers = {"source": self._one(SOURCES), **{name: transform for name in TRANSFORMS.names()}}
        values, spans = self._entries(section, ir.Dataset, handlers, TRANSFORMS.names())
        if "source" not in values and not any(e.key == "source" for e in section.entries):
            self.report(
                "NS033",
                "the dataset section needs a `source`",
                section.span,
                "for example `source mnist`; sources: " + ", ".join(SOURCES.names()),
            )
        values.pop("transforms", None)
        return self._validate(
            ir.Dataset,
            {**values, "transforms": transforms, "name": section.name, "span": section.span},
            spans,
            section.span,
        )

    def _train(self, section: st.Section, module: st.Module) -> ir.Train | None:
        def metrics(entry: st.Entry) -> Any:
            found = [self._registry_value(METRICS, entry, v) for v in entry.values]
            if not entry.values:
                self.report(
                    "NS032", "`metrics` needs at least one metric", entry.span, "one of: " + ", ".join(METRICS.names())
                )
            return INVALID if INVALID in found else found

        def early(entry: st.Entry) -> Any:
            if entry.values:
                self.report(
                    "NS032",
                    "`early_stopping` takes arguments in parentheses",
                    entry.values[0].span,
                    f"write `{EarlyStopping.signature()}`",
                )
                return INVALID
            op = self.binder.bind(EarlyStopping, entry.args, entry.span, self.constants, "")
            return INVALID if op is None else op

        def model(entry: st.Entry) -> Any:
            value = self._scalar(entry, ir.Train)
            if value is INVALID or (isinstance(value, str) and self._network_ref(value, entry, module)):
                return value
            return INVALID

        handlers = {
            "loss": self._one(LOSSES),
            "optimizer": self._one(OPTIMIZERS),
            "schedule": self._one(SCHEDULES),
            "metrics": metrics,
            "early_stopping": early,
            "model": model,
        }
        values, spans = self._entries(section, ir.Train, handlers, [])
        self._train_defaults(section, module, values)
        return self._validate(ir.Train, {**values, "span": section.span}, spans, section.span)

    def _network_ref(self, name: str, entry: st.Entry, module: st.Module) -> bool:
        names = [x.name for x in module.items if isinstance(x, st.Network)]
        if name not in names:
            if names:  # with no network at all, "the spec defines no network" says it
                self.report(
                    "NS020",
                    f"unknown network `{name}`",
                    entry.values[0].span,
                    did_you_mean(name, names) or f"networks: {', '.join(names)}",
                )
            return False
        return True

    def _train_defaults(self, section: st.Section, module: st.Module, values: dict[str, Any]) -> None:
        given = {e.key for e in section.entries}
        networks = [x.name for x in module.items if isinstance(x, st.Network)]
        if "model" not in given:
            if len(networks) == 1:
                values["model"] = networks[0]
            elif networks:
                self.report(
                    "NS033",
                    "the train section needs `model`: this spec has several networks",
                    section.span,
                    f"add `model {networks[0]}`",
                )
        for key, example in (("loss", "cross_entropy"), ("optimizer", "adam(lr=1e-3)")):
            if key not in given:
                self.report("NS033", f"the train section needs `{key}`", section.span, f"for example `{key} {example}`")
        if "epochs" not in given and "steps" not in given:
            self.report("NS033", "the train section needs `epochs` or `steps`", section.span, "for example `epochs 10`")
        elif "epochs" in given and "steps" in given:
            span = next(e.span for e in section.entries if e.key == "steps")
            self.report("NS034", "give either `epochs` or `steps`, not both", span)

    def _validate(self, model: type[Any], values: dict[str, Any], spans: dict[str, Span], span: Span) -> Any:
        from pydantic import ValidationError

        from netspec.ir.values import describe_field

        try:
            return model.model_validate(values)
        except ValidationError as e:
            for err in e.errors():
                key = str(err["loc"][0]) if err["loc"] else ""
                if key in spans:
                    self.report(
                        "NS015",
                        f"`{key}` must be {describe_field(model.model_fields[key])}, got {describe_value(values[key])}",
                        spans[key],
                    )
            return None

    # --- cross-section checks -------------------------------------------------------------

    def _cross(self, train: ir.Train, dataset: ir.Dataset) -> None:
        net = self.trace.networks.get(train.model)
        task = dataset.source.task()
        sample = self._transforms(dataset, task)
        if net is None:
            return
        if sample is not None and net.input_shape != sample:
            self.report(
                "NS041",
                f"network `{net.name}` takes input {fmt_shape(net.input_shape)}, but the dataset "
                f"gives samples of shape {fmt_shape(sample)}",
                self.trace.inputs.get(net.name, net.span),
                f"write `input {fmt_shape(sample)}`",
            )
        for p in train.loss.check_output(net.output_shape, task, _last_kind(net.steps)):
            self.binder.problem(p, train.loss.span or train.span, "NS050" if p.severity == "error" else "NS101")
        self._metrics(train, net, task)
        self._monitors(train, dataset)

    def _transforms(self, dataset: ir.Dataset, task: Task) -> Shape | None:
        shape = task.input_shape
        for t in dataset.transforms:
            if t.image_only and task.image is False:
                self.report(
                    "NS037",
                    f"`{t.kind}` works on images, but source `{dataset.source.kind}` does not give images",
                    t.span or dataset.span,
                )
                continue
            if shape is not None:
                try:
                    shape = t.apply(shape)
                except Problem as p:
                    self.binder.problem(p, t.span or dataset.span, "NS015")
        return shape

    def _metrics(self, train: ir.Train, net: ir.Network, task: Task) -> None:
        target = "value" if train.loss.target == "value" else "class"
        for m in train.metrics:
            if m.task != target:
                kind = "class predictions" if m.task == "class" else "numeric predictions"
                self.report(
                    "NS051",
                    f"metric `{m.kind}` needs {kind}, but `{train.loss.kind}` trains "
                    f"{'a regression' if target == 'value' else 'a classifier'}",
                    m.span or train.span,
                    "use mse or mae" if target == "value" else "use accuracy, precision, recall or f1",
                )
            elif m.kind == "top_k" and m.arg() > net.output_shape[-1]:
                self.report(
                    "NS051",
                    f"top_k with k={m.arg()} needs more than the {net.output_shape[-1]} classes the network scores",
                    m.span or train.span,
                )

    def _monitors(self, train: ir.Train, dataset: ir.Dataset) -> None:
        names = ["val_loss", "train_loss"] + [f"val_{m.kind}" for m in train.metrics]
        for op in (train.early_stopping, train.schedule):
            monitor = getattr(op, "monitor", None)
            if monitor is None or op is None:
                continue
            span = op.span or train.span
            if monitor not in names:
                self.report(
                    "NS052",
                    f"cannot monitor `{monitor}`",
                    span,
                    did_you_mean(monitor, names) or f"choose from {', '.join(names)}",
                )
            elif monitor.startswith("val_") and dataset.validation == 0:
                self.report(
                    "NS052",
                    f"monitoring `{monitor}` needs a validation split",
                    span,
                    "add `validation 0.1` to the dataset section",
                )

    def _memory(self, networks: list[ir.Network], train: ir.Train | None, dataset: ir.Dataset | None) -> None:
        for net in networks:
            trained = train is not None and train.model == net.name
            batch = dataset.batch if dataset and trained else 1
            copies = 2 + _optimizer_states(train) if trained else 1  # weights, gradients, optimizer state
            weights = net.params * 4 * copies
            activations = batch * (numel(net.input_shape) + _activation_elements(net.steps)) * 4 * (2 if trained else 1)
            total = weights + activations
            if total > self.options.max_memory:
                self.report(
                    "NS060",
                    f"network `{net.name}` would need about {_gib(total)} "
                    f"({net.params:,} parameters: {_gib(weights)}; activations at batch {batch}: "
                    f"{_gib(activations)}), over the {_gib(self.options.max_memory)} limit",
                    net.span,
                    "shrink the network or the batch, or raise the limit with --max-memory",
                )


def _optimizer_states(train: ir.Train | None) -> int:
    if train is None:
        return 0
    opt = train.optimizer
    return {"adam": 2, "adamw": 2, "rmsprop": 1, "adagrad": 1}.get(opt.kind, 1 if getattr(opt, "momentum", 0) else 0)


def _gib(n: int) -> str:
    return f"{n / GiB:.1f} GiB" if n >= GiB / 10 else f"{n / (1 << 20):.1f} MiB"


def _leaves(steps: list[Any]) -> list[Layer]:
    out: list[Layer] = []
    for s in steps:
        if isinstance(s, Layer):
            out.append(s)
        elif isinstance(s, ir.Repeat):
            for it in s.iterations:
                out += _leaves(it)
        else:
            out += _leaves(s.steps)
    return out


def _activation_elements(steps: list[Any]) -> int:
    return sum(numel(layer.output_shape or ()) for layer in _leaves(steps))


def _last_kind(steps: list[Any]) -> str | None:
    leaves = _leaves(steps)
    return leaves[-1].kind if leaves else None  # type: ignore[attr-defined,no-any-return]


def _params(steps: list[Any]) -> int:
    return sum(s.params or 0 for s in steps)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        return [conv(x) for x in v] if isinstance(v, tuple) else (None if v is INVALID else v)

    return {k: conv(v) for k, v in values.items()}


__all__ = ["Checker", "Op", "Options", "Trace", "check"]
