"""Pass 2: each network lowered to IR steps from its input shape.

Calls are bound through the layer registry and their shapes inferred; block uses are
expanded with their arguments; `repeat` and `residual` bodies are lowered in turn. The
limits (layers after expansion, block and body depth) keep the check bounded and the IR
serializable.
"""

from __future__ import annotations

from typing import Any

from netspec.ir import nodes as ir
from netspec.ir.checks.blocks import block_args
from netspec.ir.checks.context import CheckContext
from netspec.ir.checks.forms import not_searched
from netspec.ir.search import is_search
from netspec.ir.sections import registries
from netspec.ir.values import INVALID, describe_value, jsonable
from netspec.language import syntax as st
from netspec.language.span import Shape, Span
from netspec.language.suggest import did_you_mean
from netspec.registry import LAYERS, Problem
from netspec.registry.base import article, fmt_shape

MAX_LAYERS = 100_000  # after expanding blocks and repeats
MAX_WORK = 3 * MAX_LAYERS  # calls and repeat iterations lowered, failed ones too (blocks are reused per key)
MAX_BODY_DEPTH = 64  # bodies inside bodies, through blocks (as braces nest in one body); keeps the IR serializable

Lowered = tuple[list[Any] | None, Shape | None]  # IR steps (None after an error) and the output shape
Expansion = tuple[list[Any] | None, Shape | None, int]  # a block use lowered: steps, output shape, layers


def run(module: st.Module, ctx: CheckContext) -> None:
    ctx.parts.network_names = [x.name for x in module.items if isinstance(x, st.Network)]
    lowering = Lowering(ctx, reusable(ctx.blocks))
    found = (lowering.network(x) for x in module.items if isinstance(x, st.Network))
    ctx.parts.networks = [n for n in found if n]


def _params(steps: list[Any]) -> int:
    return sum(s.params or 0 for s in steps)


class Lowering:
    """Lowers network bodies; counts layers and nesting across the whole spec."""

    def __init__(self, ctx: CheckContext, reusable: set[str] | None = None) -> None:
        self.ctx = ctx
        self.report = ctx.report
        self.layer_count = 0
        self.work = 0  # calls and iterations lowered, failed ones included: bounds the check's time
        self.depth = 0  # bodies being lowered, one inside the other
        self.reusable = reusable or set()  # blocks whose expansion does not depend on the uses around it
        self.expanded: dict[tuple[str, str, Shape | None, int], Expansion] = {}
        self.unknown: set[Span] = set()  # calls already reported as unknown layers

    def network(self, net: st.Network) -> ir.Network | None:
        steps = net.body.steps
        if not steps or not isinstance(steps[0], st.Input):
            self._no_input(net)
            return None
        self.ctx.where = net.name_span
        shape = self._input_shape(steps[0])
        self.ctx.trace.inputs[net.name] = steps[0].span
        lowered, out = self.lower(steps[1:], shape, self.ctx.constants)
        if shape is None or out is None or lowered is None:
            return None
        self._between_layers(lowered)
        node = ir.Network(
            name=net.name, span=net.span, input_shape=shape, output_shape=out, params=_params(lowered), steps=lowered
        )
        self.ctx.trace.networks[net.name] = node
        return node

    def _between_layers(self, steps: list[Any]) -> None:
        """The rules a layer has about the others of its network (a tied output layer needs its embedding)."""
        layers = ir.leaves(steps)
        for layer in layers:
            problem = layer.network_problem(layers)
            if problem is not None:
                self.report("NS040", problem.message, layer.span or self.ctx.where, problem.hint)

    def _no_input(self, net: st.Network) -> None:
        if not any(isinstance(s, st.Input) for s in net.body.steps):  # a late `input` is reported where it is
            self.report(
                "NS042",
                f"network `{net.name}` has no `input` shape",
                net.name_span,
                "make its first line the shape of one sample, e.g. `input [1, 28, 28]`",
            )
        self.lower(net.body.steps, None, self.ctx.constants)  # still check its layers' arguments

    def _input_shape(self, item: st.Input) -> Shape | None:
        value = self.ctx.evaluator.eval(item.shape, self.ctx.constants)
        if isinstance(value, int) and not isinstance(value, bool):
            value = (value,)
        if _is_shape(value):
            return value  # type: ignore[no-any-return]
        if value is not INVALID:
            self.report(
                "NS043",
                f"`input` needs a shape such as [1, 28, 28], got {describe_value(value)}",
                item.shape.span,
                "list the per-sample dimensions (batch excluded) as positive integers",
            )
        return None

    def lower(self, steps: tuple[st.Step, ...], shape: Shape | None, scope: dict[str, Any]) -> Lowered:
        """Lower steps from an input shape. Returns (IR steps or None on error, output shape)."""
        out: list[Any] | None = []
        self.depth += 1
        try:
            for step in steps:
                nodes, shape = self._step(step, shape, scope)
                if out is not None and nodes is not None:
                    out.extend(nodes)  # not `out + nodes`: quadratic in a long body
                else:
                    out = None
        finally:
            self.depth -= 1
        return out, shape

    def _step(self, step: st.Step, shape: Shape | None, scope: dict[str, Any]) -> Lowered:
        if isinstance(step, st.Chain):
            return self._chain(step, shape, scope)
        if isinstance(step, (st.Repeat, st.Residual)) and self._too_deep(step.span):
            return None, None
        if isinstance(step, st.Repeat):
            return self._repeat(step, shape, scope)
        if isinstance(step, st.Residual):
            return self._residual(step, shape, scope)
        self._misplaced_input(step)
        return None, shape

    def _chain(self, step: st.Chain, shape: Shape | None, scope: dict[str, Any]) -> Lowered:
        nodes: list[Any] | None = []
        for call in step.calls:
            node, shape = self._call(call, shape, scope)
            if nodes is not None and node is not None:
                nodes.append(node)
            else:
                nodes = None
        return nodes, shape

    def _misplaced_input(self, step: st.Step) -> None:
        if self.report.stack:
            self.report("NS044", "`input` belongs on the first line of a network, not inside a block", step.span)
        else:
            self.report(
                "NS044",
                "`input` must be the first line of the network",
                step.span,
                "move it above the layers; a network has one `input`",
            )

    def _call(self, call: st.Call, shape: Shape | None, scope: dict[str, Any]) -> tuple[Any, Shape | None]:
        if self._spent(call.span):  # blocks of blocks can expand exponentially: stop expanding
            return None, None
        if call.name in self.ctx.blocks:
            return self._block_use(self.ctx.blocks[call.name], call, shape, scope)
        cls = LAYERS.get(call.name)
        if cls is None:
            if call.span not in self.unknown:  # reported once, however often its block is expanded
                self.unknown.add(call.span)
                unknown_layer(self.ctx, call)
            return None, None
        self.layer_count += 1
        if self.layer_count > MAX_LAYERS:
            self._too_many_layers(call.span)
            return None, None
        op = self.ctx.binder.bind(cls, call.args, call.span, scope, "layer")
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
        self.ctx.trace.layers.append((call.span, node))
        return node, out

    def _block_use(
        self, block: st.Block, call: st.Call, shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[Any, Shape | None]:
        if self._cannot_expand(block, call):
            return None, None
        args = block_args(self.ctx, block, call, scope)
        if args is None:
            return None, None
        steps, out = self._expand(block, call, shape, args)
        if steps is None or shape is None or out is None:
            return None, out
        params = _params(steps)
        node = ir.BlockUse(
            span=call.span,
            name=block.name,
            args=jsonable(args),
            steps=steps,
            input_shape=shape,
            output_shape=out,
            params=params,
        )
        return node, out

    def _expand(self, block: st.Block, call: st.Call, shape: Shape | None, args: dict[str, Any]) -> Lowered:
        """The block's body lowered for these arguments and input shape: once per distinct use
        (a block used twice by a block used twice... is checked once, not 2**n times)."""
        key = (block.name, repr(sorted(args.items())), shape, self.depth) if block.name in self.reusable else None
        if key is not None and key in self.expanded:
            steps, out, layers = self.expanded[key]
            self.layer_count += layers
            if self.layer_count > MAX_LAYERS:
                self._too_many_layers(call.span)
                return None, None
            return steps, out
        before = self.layer_count
        with self.report.inside(block.name, call.span):
            steps, out = self.lower(block.body.steps, shape, {**self.ctx.constants, **args})
        if key is not None:
            self.expanded[key] = (steps, out, self.layer_count - before)
        return steps, out

    def _spent(self, span: Span) -> bool:
        """Count one step of work; whether the check must stop expanding (the limit is reported)."""
        self.work += 1
        self.ctx.clock.poll()
        if self.layer_count <= MAX_LAYERS and self.work <= MAX_WORK:
            return False
        self._too_many_layers(span)
        return True

    def _cannot_expand(self, block: st.Block, call: st.Call) -> bool:
        """Whether a use of `block` would recurse or nest too deeply (reported). Recursion is a block
        that uses itself, directly or through others; a long chain of distinct blocks is only deep."""
        cycle = [name for name, _ in self.report.stack]
        if block.name in cycle:
            through = cycle[cycle.index(block.name) + 1 :]
            named = [f"`{n}`" for n in through[:3]] + ([f"{len(through) - 3} more"] if len(through) > 3 else [])
            how = f" through {', '.join(named)}" if through else ""
            self.report("NS022", f"block `{block.name}` uses itself{how}", call.span, "blocks cannot be recursive")
            return True
        return self._too_deep(call.span)

    def _repeat(self, step: st.Repeat, shape: Shape | None, scope: dict[str, Any]) -> Lowered:
        count = self._count(step, scope)
        if count is None:
            return None, None
        iterations, out = self._iterations(step, count, shape, scope)
        if iterations is None or shape is None or out is None:
            return None, out
        params = sum(_params(it) for it in iterations)
        node = ir.Repeat(
            span=step.span, count=count, iterations=iterations, input_shape=shape, output_shape=out, params=params
        )
        return [node], out

    def _count(self, step: st.Repeat, scope: dict[str, Any]) -> int | None:
        """The repeat count, or None after an error (the body is still checked)."""
        count = self.ctx.evaluator.eval(step.count, scope)
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return count
        if count is not INVALID:
            self.report(
                "NS045", f"`repeat` needs a positive integer count, got {describe_value(count)}", step.count.span
            )
        self.lower(step.body.steps, None, scope)
        return None

    def _iterations(
        self, step: st.Repeat, count: int, shape: Shape | None, scope: dict[str, Any]
    ) -> tuple[list[list[Any]] | None, Shape | None]:
        iterations: list[list[Any]] | None = []
        before = self.layer_count
        for i in range(count):
            if self._foreseen_too_many(i, before, count) or self._spent(step.span):
                self._too_many_layers(step.span)
                return None, None
            mark = self.layer_count
            steps, shape = self.lower(step.body.steps, shape, scope)
            self.layer_count = max(self.layer_count, mark + 1)  # an empty body counts too, so loops stay bounded
            if iterations is not None and steps is not None:
                iterations.append(steps)  # not `iterations + [steps]`: quadratic in the count
            else:
                iterations = None
            if shape is None:
                break
        return iterations, shape

    def _foreseen_too_many(self, i: int, before: int, count: int) -> bool:
        """Over the layer limit before iteration `i`; after one iteration the total is foreseeable,
        so `repeat 100000000 { ... }` fails at once."""
        per_iteration = self.layer_count - before
        return self.layer_count > MAX_LAYERS or (i == 1 and self.layer_count + per_iteration * (count - 1) > MAX_LAYERS)

    def _residual(self, step: st.Residual, shape: Shape | None, scope: dict[str, Any]) -> Lowered:
        steps, out = self.lower(step.body.steps, shape, scope)
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
        node = ir.Residual(span=step.span, steps=steps, input_shape=shape, output_shape=out, params=_params(steps))
        return [node], out

    def _too_deep(self, span: Span) -> bool:
        """Whether a body opened at ``span`` would nest too deeply (reported once); the IR stays serializable."""
        if self.depth < MAX_BODY_DEPTH:
            return False
        if not self.report.already("NS022", "levels deep"):
            self.report(
                "NS022",
                f"blocks, repeats and residuals are nested more than {MAX_BODY_DEPTH} levels deep",
                span,
                "flatten some of the blocks",
            )
        return True

    def _too_many_layers(self, span: Span) -> None:
        """Report the layer limit once, at the outermost block use that crossed it."""
        if self.report.already("NS060", "expands to more than"):
            return
        where = self.report.stack[0][1] if self.report.stack else span
        with self.report.outside_blocks():
            self.report(
                "NS060",
                f"the network expands to more than {MAX_LAYERS:,} layers",
                where,
                "use fewer or smaller repeats and blocks",
            )


def reusable(blocks: dict[str, st.Block]) -> set[str]:
    """The blocks that use no block recursively, directly or through others: their expansion depends
    only on their arguments, input shape and depth, so one lowering serves every such use."""
    uses = {name: set(_uses(block.body.steps)) & blocks.keys() for name, block in blocks.items()}
    state: dict[str, bool | None] = {}  # None while being visited; then whether reusable
    for root in uses:
        if root in state:
            continue
        state[root] = None
        stack = [(root, iter(uses[root]))]
        while stack:
            name, pending = stack[-1]
            nxt = next(pending, None)
            if nxt is None:
                stack.pop()
                state[name] = all(state.get(u) is True for u in uses[name])
            elif nxt not in state:
                state[nxt] = None
                stack.append((nxt, iter(uses[nxt])))
    return {name for name, ok in state.items() if ok}


def _uses(steps: tuple[st.Step, ...]) -> list[str]:
    """The names called in a body, nested bodies included."""
    names: list[str] = []
    bodies = [steps]
    while bodies:
        for step in bodies.pop():
            if isinstance(step, st.Chain):
                names.extend(call.name for call in step.calls)
            elif isinstance(step, (st.Repeat, st.Residual)):
                bodies.append(step.body.steps)
    return names


def _is_shape(value: Any) -> bool:
    return (
        isinstance(value, tuple)
        and bool(value)
        and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in value)
    )


def unknown_layer(ctx: CheckContext, call: st.Call) -> None:
    """`foo(...)` in a network that is no layer: say what it is if a section knows it."""
    if is_search(call):
        not_searched(ctx, "a layer", call)
        return
    for section, registry in registries():
        if call.name in registry.entries:
            ctx.report(
                "NS010",
                f"`{call.name}` is {article(registry.what)}, not a layer",
                call.name_span,
                f"use it in the {section.kind} section",
            )
            return
    names = LAYERS.names() + list(ctx.blocks)
    hint = did_you_mean(call.name, names) or "see `netspec docs` for the list of layers"
    ctx.report("NS010", f"unknown layer `{call.name}`", call.name_span, hint)
