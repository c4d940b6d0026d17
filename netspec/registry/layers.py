"""Layers: parameters, shape rule, parameter count, torch construction.

Shapes are per sample (the batch dimension excluded). Each class is the one place its
layer is described; the checker, runtime, emitter, summary, docs and LSP read it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Fraction,
    NonNegInt,
    Op,
    Pair,
    PosFloat,
    PosInt,
    Problem,
    Registry,
    fmt_shape,
    numel,
    torch_changed,
)


@dataclass(frozen=True)
class TorchModule:
    """How to construct one torch module: `nn.Conv2d(1, 20, kernel_size=5)`.

    `name` is `nn.<Class>` for torch.nn, or a class from `netspec.verbatim.modules`.
    The runtime instantiates it; the emitter prints it. One description, two backends.
    """

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    init: dict[str, float] = field(default_factory=dict)  # GPT-2's init: init_normal's arguments (std, proj_std)


InitStd = Union[PosFloat, None]
INIT_DOC = "standard deviation of a normal initialisation of the weights, biases zero (GPT-2's); none: torch's"


def init_args(std: float | None, **more: float | None) -> dict[str, float]:
    """init_normal's arguments for a layer initialised with `std` (and e.g. proj_std), or none."""
    return {} if std is None else {"std": std, **{k: v for k, v in more.items() if v is not None}}


class Layer(Op):
    """Base of layers and activations."""

    input_shape: Shape | None = Field(default=None, description="inferred per-sample input shape")
    output_shape: Shape | None = Field(default=None, description="inferred per-sample output shape")
    params: int | None = Field(default=None, description="inferred trainable parameter count")

    base_fields: ClassVar[frozenset[str]] = frozenset({"kind", "span", "input_shape", "output_shape", "params"})
    category: ClassVar[str] = "layer"
    expects: ClassVar[str] = "any input"  # e.g. "[C, H, W]", shown in shape errors
    ranks: ClassVar[tuple[int, ...] | None] = None  # accepted input ranks; None: any

    def infer(self, shape: Shape) -> Shape:
        """The output shape for an input shape; raises Problem when the input does not fit."""
        self.check_rank(shape)
        return self.output(shape)

    def check_rank(self, shape: Shape) -> None:
        if self.ranks is not None and len(shape) not in self.ranks:
            raise Problem(f"`{self.kind_name()}` expects {self.expects}, got {fmt_shape(shape)}", self.rank_hint(shape))

    def rank_hint(self, shape: Shape) -> str | None:
        return None

    def output(self, shape: Shape) -> Shape:
        return shape

    def count(self, shape: Shape) -> int:
        """Trainable parameters for an input shape."""
        return 0

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        raise NotImplementedError

    def network_problem(self, layers: list[Layer]) -> Problem | None:
        """A rule about the other layers of its network (`layers`, every leaf in order)."""
        return None

    def shared_matrix(self) -> tuple[int, int] | None:
        """The [rows, columns] weight it lends to a tied layer (an embedding's), or None."""
        return None


LAYERS: Registry[type[Layer]] = Registry("layer")


def _pair(v: int | tuple[int, ...], n: int = 2) -> tuple[int, ...]:
    return (v,) * n if isinstance(v, int) else tuple(v)


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _spatial(name: str, shape: Shape, out: tuple[int, ...], what: str) -> None:
    if any(o <= 0 for o in out):
        raise Problem(
            f"`{name}` would produce an empty output from {fmt_shape(shape)}: "
            f"the {what} is larger than the (padded) input",
            "use a smaller kernel, add padding, or remove a downsampling layer before it",
        )


class _ConvBase(Layer):
    dims: ClassVar[int] = 2
    if TYPE_CHECKING:  # declared as fields by each subclass
        out_channels: int
        kernel: Any
        stride: Any
        padding: Any
        dilation: Any
        bias: bool

    def _geometry(self) -> tuple[tuple[int, ...], ...]:
        n = self.dims
        k = _pair(self.kernel, n)
        s = _pair(self.stride, n)
        d = _pair(self.dilation, n)
        pad = self.padding
        if pad == "same":
            p = tuple(dd * (kk - 1) // 2 for kk, dd in zip(k, d))
        else:
            p = (0,) * n if pad == "valid" else _pair(pad, n)
        return k, s, p, d

    def problems(self) -> list[Problem]:
        if self.padding == "same" and any(x != 1 for x in _pair(self.stride, self.dims)):
            return [Problem('padding "same" needs stride 1', "give the padding as a number", "padding")]
        return []

    def _groups_check(self, channels: int) -> None:
        g = getattr(self, "groups", 1)
        if channels % g or self.out_channels % g:
            raise Problem(
                f"`groups={g}` must divide both the input channels ({channels}) and out_channels ({self.out_channels})",
                field="groups",
            )

    def output(self, shape: Shape) -> Shape:
        self._groups_check(shape[0])
        k, s, p, d = self._geometry()
        if self.padding == "same":
            out = tuple(shape[1:])
        else:
            out = tuple(_conv_out(n, *g) for n, *g in zip(shape[1:], k, s, p, d))
        _spatial(self.kind_name(), shape, out, "kernel")
        return (self.out_channels, *out)

    def count(self, shape: Shape) -> int:
        k, *_ = self._geometry()
        out = self.out_channels
        return out * (shape[0] // getattr(self, "groups", 1)) * math.prod(k) + (out if self.bias else 0)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        k, s, p, d = self._geometry()
        pad: Any = self.padding if self.padding in ("same", "valid") else _single(p)  # type: ignore[attr-defined]
        kwargs: dict[str, Any] = {"kernel_size": _single(k)}
        for key, value, default in (
            ("stride", _single(s), 1),
            ("padding", pad, 0),
            ("dilation", _single(d), 1),
            ("groups", getattr(self, "groups", 1), 1),
            ("bias", self.bias, True),
        ):
            if value != default:
                kwargs[key] = value
        cls = f"nn.Conv{self.dims}d"
        return [TorchModule(cls, (shape[0], self.out_channels), kwargs)]


def _single(t: tuple[int, ...]) -> int | tuple[int, ...]:
    return t[0] if len(set(t)) == 1 else t


Padding = Union[NonNegInt, tuple[NonNegInt, NonNegInt], Literal["same", "valid"]]


@LAYERS.register
class Dense(Layer):
    """Fully connected layer: y = xWᵀ + b over the last dimension (`nn.Linear`). With `tied=true`
    it is a language model's output layer whose weight is the network's token `embedding` of
    shape [units, features] (weight tying, as GPT-2): that matrix is counted once, in the embedding."""

    kind: Literal["dense"] = "dense"
    units: PosInt = Field(description="output features")
    bias: bool = Field(True, description="add a learned bias")
    tied: bool = Field(False, description="share the weight of the network's embedding(units, features)")
    init: InitStd = Field(None, description=INIT_DOC)
    positional: ClassVar = ("units",)
    expects: ClassVar[str] = "[features] or [seq, features]"
    ranks: ClassVar = (1, 2)

    def rank_hint(self, shape: Shape) -> str | None:
        return "add `flatten` before it" if len(shape) > 2 else None

    def problems(self) -> list[Problem]:
        if self.tied and self.init is not None:
            return [Problem("a tied `dense` has the embedding's weight and its `init`", "remove `init`", "init")]
        return []

    def network_problem(self, layers: list[Layer]) -> Problem | None:
        wanted = (self.units, self.input_shape[-1]) if self.input_shape else None
        if not self.tied or wanted is None or any(x.shared_matrix() == wanted for x in layers):
            return None
        return Problem(
            f"a tied `dense({self.units})` needs an `embedding({wanted[0]}, {wanted[1]})` in its network",
            "add the token embedding it shares its weight with, or remove `tied=true`",
            "tied",
        )

    def output(self, shape: Shape) -> Shape:
        return (*shape[:-1], self.units)

    def count(self, shape: Shape) -> int:
        weights = 0 if self.tied else shape[-1] * self.units
        return weights + (self.units if self.bias else 0)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        name = "TiedLinear" if self.tied else "nn.Linear"
        kwargs = {} if self.bias else {"bias": False}
        return [TorchModule(name, (shape[-1], self.units), kwargs, init_args(self.init))]


@LAYERS.register
class Conv1d(_ConvBase):
    """1-D convolution over [C, L] inputs (`nn.Conv1d`)."""

    kind: Literal["conv1d"] = "conv1d"
    out_channels: PosInt = Field(description="output channels")
    kernel: PosInt = Field(description="kernel size")
    stride: PosInt = Field(1, description="step between windows")
    padding: Union[NonNegInt, Literal["same", "valid"]] = Field(0, description='zeros added to both ends, or "same"')
    dilation: PosInt = Field(1, description="spacing between kernel elements")
    groups: PosInt = Field(1, description="blocked connections from input to output channels")
    bias: bool = Field(True, description="add a learned bias")
    positional: ClassVar = ("out_channels", "kernel")
    expects: ClassVar[str] = "[C, L]"
    ranks: ClassVar = (2,)
    dims: ClassVar[int] = 1


@LAYERS.register
class Conv2d(_ConvBase):
    """2-D convolution over [C, H, W] inputs (`nn.Conv2d`)."""

    kind: Literal["conv2d"] = "conv2d"
    out_channels: PosInt = Field(description="output channels")
    kernel: Pair = Field(description="kernel size: k or [kh, kw]")
    stride: Pair = Field(1, description="step between windows")
    padding: Padding = Field(0, description='zeros added on each side, or "same"')
    dilation: Pair = Field(1, description="spacing between kernel elements")
    groups: PosInt = Field(1, description="blocked connections from input to output channels")
    bias: bool = Field(True, description="add a learned bias")
    positional: ClassVar = ("out_channels", "kernel")
    expects: ClassVar[str] = "[C, H, W]"
    ranks: ClassVar = (3,)

    def rank_hint(self, shape: Shape) -> str | None:
        return "reshape the input to [C, H, W] first, e.g. `input [1, 28, 28]`" if len(shape) < 3 else None


@LAYERS.register
class ConvTranspose2d(Layer):
    """Transposed 2-D convolution (\"deconvolution\"), upsampling [C, H, W] (`nn.ConvTranspose2d`)."""

    kind: Literal["conv_transpose2d"] = "conv_transpose2d"
    out_channels: PosInt = Field(description="output channels")
    kernel: Pair = Field(description="kernel size: k or [kh, kw]")
    stride: Pair = Field(1, description="upsampling step")
    padding: Union[NonNegInt, tuple[NonNegInt, NonNegInt]] = Field(
        0, description="removed from each side of the output"
    )
    output_padding: Union[NonNegInt, tuple[NonNegInt, NonNegInt]] = Field(
        0, description="added to one side of the output"
    )
    dilation: Pair = Field(1, description="spacing between kernel elements")
    bias: bool = Field(True, description="add a learned bias")
    positional: ClassVar = ("out_channels", "kernel")
    expects: ClassVar[str] = "[C, H, W]"
    ranks: ClassVar = (3,)

    def problems(self) -> list[Problem]:
        limits = [max(s, d) for s, d in zip(_pair(self.stride), _pair(self.dilation))]
        if any(op >= lim for op, lim in zip(_pair(self.output_padding), limits)):
            return [Problem("output_padding must be smaller than the stride or the dilation", field="output_padding")]
        return []

    def output(self, shape: Shape) -> Shape:
        geo = zip(
            shape[1:],
            _pair(self.kernel),
            _pair(self.stride),
            _pair(self.padding),
            _pair(self.output_padding),
            _pair(self.dilation),
        )
        out = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, k, s, p, op, d in geo)
        _spatial(self.kind_name(), shape, out, "padding")
        return (self.out_channels, *out)

    def count(self, shape: Shape) -> int:
        return shape[0] * self.out_channels * math.prod(_pair(self.kernel)) + (self.out_channels if self.bias else 0)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs: dict[str, Any] = {"kernel_size": self.kernel}
        for key, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1), ("bias", True)):
            if getattr(self, key) != default:
                kwargs[key] = getattr(self, key)
        return [TorchModule("nn.ConvTranspose2d", (shape[0], self.out_channels), kwargs)]


class _Pool(Layer):
    kernel: Union[PosInt, tuple[PosInt, ...]] = Field(description="window size: k or one per spatial dimension")
    stride: Union[PosInt, tuple[PosInt, ...], None] = Field(
        None, description="step between windows (default: the kernel)"
    )
    padding: Union[NonNegInt, tuple[NonNegInt, ...]] = Field(
        0, description="padding on each side (at most half the kernel)"
    )
    positional: ClassVar = ("kernel", "stride")
    expects: ClassVar[str] = "[C, L], [C, H, W] or [C, D, H, W]"
    ranks: ClassVar = (2, 3, 4)
    torch_name: ClassVar[str] = "MaxPool"

    def _geometry(self, n: int) -> tuple[tuple[int, ...], ...]:
        k = _pair(self.kernel, n)
        s = _pair(self.stride, n) if self.stride is not None else k
        p = _pair(self.padding, n)
        for values, what in ((k, "kernel"), (s, "stride"), (p, "padding")):
            if len(values) != n:
                raise Problem(f"`{what}` has {len(values)} values but the input has {n} spatial dimensions", field=what)
        if any(pp * 2 > kk for pp, kk in zip(p, k)):
            raise Problem("padding must be at most half the kernel", field="padding")
        return k, s, p

    def output(self, shape: Shape) -> Shape:
        k, s, p = self._geometry(len(shape) - 1)
        out = tuple(_conv_out(n, kk, ss, pp, 1) for n, kk, ss, pp in zip(shape[1:], k, s, p))
        _spatial(self.kind_name(), shape, out, "window")
        return (shape[0], *out)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        n = len(shape) - 1
        k, s, p = self._geometry(n)
        kwargs: dict[str, Any] = {}
        if s != k:
            kwargs["stride"] = _single(s)
        if any(p):
            kwargs["padding"] = _single(p)
        return [TorchModule(f"nn.{self.torch_name}{n}d", (_single(k),), kwargs)]


@LAYERS.register
class MaxPool(_Pool):
    """Max pooling; 1-D, 2-D or 3-D by the input's rank (`nn.MaxPool2d` for [C, H, W])."""

    kind: Literal["maxpool"] = "maxpool"


@LAYERS.register
class AvgPool(_Pool):
    """Average pooling; 1-D, 2-D or 3-D by the input's rank (`nn.AvgPool2d` for [C, H, W])."""

    kind: Literal["avgpool"] = "avgpool"
    torch_name: ClassVar[str] = "AvgPool"

    def output(self, shape: Shape) -> Shape:
        out = super().output(shape)
        k, _, _ = self._geometry(len(shape) - 1)
        # torch's avg_pool3d (unlike the 1-D and 2-D ones) refuses a window larger than the unpadded input
        if len(shape) == 4 and any(n < kk for n, kk in zip(shape[1:], k)):
            raise Problem(
                f"`avgpool` over {fmt_shape(shape)} needs a window no larger than the input: "
                "3-D average pooling does not let padding make up the difference",
                "use a smaller kernel, or remove a downsampling layer before it",
            )
        return out


@LAYERS.register
class GlobalAvgPool(Layer):
    """Average over all spatial positions: [C, ...] → [C]."""

    kind: Literal["global_avgpool"] = "global_avgpool"
    expects: ClassVar[str] = "[C, L], [C, H, W] or [C, D, H, W]"
    ranks: ClassVar = (2, 3, 4)

    def output(self, shape: Shape) -> Shape:
        return (shape[0],)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule(f"nn.AdaptiveAvgPool{len(shape) - 1}d", (1,)), TorchModule("nn.Flatten")]


@LAYERS.register
class Flatten(Layer):
    """Flatten each sample to one dimension: [C, H, W] → [C·H·W]."""

    kind: Literal["flatten"] = "flatten"

    def output(self, shape: Shape) -> Shape:
        return (numel(shape),)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("nn.Flatten")]


@LAYERS.register
class Reshape(Layer):
    """Reshape each sample; one dimension may be -1 (inferred)."""

    kind: Literal["reshape"] = "reshape"
    shape: tuple[int, ...] = Field(description="the new per-sample shape, e.g. [64, 7, 7]")
    positional: ClassVar = ("shape",)

    def problems(self) -> list[Problem]:
        if self.shape.count(-1) > 1 or any(d == 0 or d < -1 for d in self.shape) or not self.shape:
            return [Problem("`shape` needs positive sizes and at most one -1", field="shape")]
        return []

    def output(self, shape: Shape) -> Shape:
        total, known = numel(shape), numel(tuple(d for d in self.shape if d != -1))
        out = tuple(total // known if d == -1 else d for d in self.shape)
        if numel(out) != total:
            raise Problem(
                f"cannot reshape {fmt_shape(shape)} ({total} values) to {fmt_shape(self.shape)}",
                "the number of values must stay the same",
            )
        return out

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("nn.Flatten"), TorchModule("nn.Unflatten", (1, self.output(shape)))]


@LAYERS.register
class Dropout(Layer):
    """Randomly zero elements with probability p during training (`nn.Dropout`)."""

    kind: Literal["dropout"] = "dropout"
    p: Fraction = Field(0.5, description="probability of zeroing an element")
    positional: ClassVar = ("p",)

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("nn.Dropout", (self.p,))]


@LAYERS.register
class BatchNorm(Layer):
    """Batch normalization over the channel (first) dimension; 1-D, 2-D or 3-D by the input's rank."""

    kind: Literal["batchnorm"] = "batchnorm"
    eps: PosFloat = Field(1e-5, description="added to the variance for stability")
    momentum: Fraction = Field(0.1, description="running statistics update rate")
    affine: bool = Field(True, description="learn a scale and shift")
    expects: ClassVar[str] = "[F], [C, L], [C, H, W] or [C, D, H, W]"
    ranks: ClassVar = (1, 2, 3, 4)

    def count(self, shape: Shape) -> int:
        return 2 * shape[0] if self.affine else 0

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        dims = max(len(shape) - 1, 1)
        return [
            TorchModule(f"nn.BatchNorm{dims}d", (shape[0],), torch_changed(self, eps=1e-5, momentum=0.1, affine=True))
        ]


@LAYERS.register
class MinibatchStddev(Layer):
    """Append one channel that says how much the batch varies (ProGAN's minibatch standard
    deviation, Karras et al. 2018): the standard deviation of every value over groups of `group`
    samples, averaged to one number per group. In a discriminator it lets the judge see a batch
    of fakes that look alike, which pushes the generator to vary its samples (fewer dropped modes)."""

    kind: Literal["minibatch_stddev"] = "minibatch_stddev"
    group: PosInt = Field(4, description="samples per group (the largest common divisor with the batch size)")
    positional: ClassVar = ("group",)
    expects: ClassVar[str] = "[F], [C, L], [C, H, W] or [C, D, H, W]"
    ranks: ClassVar = (1, 2, 3, 4)

    def output(self, shape: Shape) -> Shape:
        return (shape[0] + 1, *shape[1:])

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        return [TorchModule("MinibatchStddev", (), torch_changed(self, group=4))]


@LAYERS.register
class LayerNorm(Layer):
    """Layer normalization over the last dimension (`nn.LayerNorm`)."""

    kind: Literal["layernorm"] = "layernorm"
    eps: PosFloat = Field(1e-5, description="added to the variance for stability")
    affine: bool = Field(True, description="learn a scale and shift")
    bias: bool = Field(True, description="learn the shift (false: a scale only, as nanoGPT's bias=False)")

    def count(self, shape: Shape) -> int:
        return (1 + self.bias) * shape[-1] if self.affine else 0

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs = torch_changed(self, eps=1e-5)
        if not self.affine:
            kwargs["elementwise_affine"] = False
        elif not self.bias:
            kwargs["bias"] = False
        return [TorchModule("nn.LayerNorm", (shape[-1],), kwargs)]


@LAYERS.register
class Upsample(Layer):
    """Upsample [C, L] or [C, H, W] by an integer factor (`nn.Upsample`)."""

    kind: Literal["upsample"] = "upsample"
    scale: PosInt = Field(2, description="integer scale factor for every spatial dimension")
    mode: Literal["nearest", "linear", "bilinear"] = Field("nearest", description="interpolation")
    positional: ClassVar = ("scale",)
    expects: ClassVar[str] = "[C, L] or [C, H, W]"
    ranks: ClassVar = (2, 3)

    def output(self, shape: Shape) -> Shape:
        needs = {"linear": 2, "bilinear": 3}.get(self.mode)
        if needs and len(shape) != needs:
            raise Problem(
                f'mode "{self.mode}" needs a {"[C, L]" if needs == 2 else "[C, H, W]"} input, got {fmt_shape(shape)}',
                field="mode",
            )
        return (shape[0], *(d * self.scale for d in shape[1:]))

    def torch_modules(self, shape: Shape) -> list[TorchModule]:
        kwargs: dict[str, Any] = {"scale_factor": self.scale}
        if self.mode != "nearest":
            kwargs["mode"] = self.mode
        return [TorchModule("nn.Upsample", (), kwargs)]
