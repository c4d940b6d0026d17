"""Dataset transforms: preprocessing and augmentation, their shape rules and batch functions."""

from __future__ import annotations

from typing import Annotated, Any, Callable, ClassVar, Literal, Union

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Fraction,
    NonNegInt,
    Op,
    PosInt,
    Problem,
    Registry,
    fmt_shape,
)


class Transform(Op):
    """A transform. Besides its parameters, each class says what the backends need: `function`
    (the batch function of netspec run), what evaluation data gets of it, and, for emitted
    scripts, its template transforms/<kind>.py.j2 and the netspec/verbatim/data.py functions it uses."""

    image_only: ClassVar[bool] = True
    augment: ClassVar[bool] = True  # applied to training batches only
    statistics: ClassVar[bool] = False  # computed over the whole training split (not streamable)
    evaluated: ClassVar[bool] = False  # evaluation batches get it too (preprocessing) or its counterpart
    keeps_statistics: ClassVar[bool] = False  # the script keeps its mean and std as tensors
    helpers: ClassVar[frozenset[str]] = frozenset()  # the netspec/verbatim/data.py functions it uses

    @classmethod
    def template(cls) -> str:
        return f"transforms/{cls.kind_name()}.py.j2"

    def script_tensors(self) -> dict[str, Any]:
        """Values the script holds as tensors: name -> a number or a list of numbers."""
        return {}

    def apply(self, shape: Shape) -> Shape:
        """The sample shape after this transform; raises Problem when it does not fit."""
        return shape

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        """The transform on a batch: f(x, generator) -> x (torch, imported on use).
        `train_x` is the training data, for transforms that need its statistics."""
        raise NotImplementedError

    def eval_function(self, train_x: Any) -> Callable[[Any], Any] | None:
        """What it does outside training: the same for preprocessing, nothing for augmentation."""
        if self.augment:
            return None
        fn = self.function(train_x)
        return lambda x: fn(x, None)

    def deployed(self, train_x: Any) -> dict[str, Any]:
        """What a deployed model (an export, `netspec serve`) needs of this transform to prepare its
        inputs without the training data: a JSON record, its kind under "transform"."""
        return {"transform": self.kind_name(), **_json(self.hyper())}

    @classmethod
    def restored(cls, record: dict[str, Any], probe: Any) -> Callable[[Any], Any] | None:
        """The evaluation function again, from a `deployed` record; `probe` is a batch of one sample."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in record.items() if k != "transform"}
        return cls.model_validate(fields).eval_function(probe)


def _stat(value: float | tuple[float, ...], like: Any) -> Any:
    """A per-channel statistic shaped to broadcast over a batch of images or feature rows."""
    import torch

    t = torch.tensor(value, dtype=torch.float32)
    return t.view(-1, 1, 1) if t.dim() and like.dim() == 4 else t


def _json(values: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _numbers(value: float | tuple[float, ...]) -> float | list[float]:
    return [float(v) for v in value] if isinstance(value, tuple) else float(value)


TRANSFORMS: Registry[type[Transform]] = Registry("transform")

Stat = Union[float, tuple[float, ...]]


@TRANSFORMS.register
class Normalize(Transform):
    """(x - mean) / std, with one value for all channels or one per channel."""

    kind: Literal["normalize"] = "normalize"
    mean: Stat = Field(description="mean: a number, or one per channel")
    std: Stat = Field(description="standard deviation: a number, or one per channel")
    positional: ClassVar = ("mean", "std")
    image_only: ClassVar[bool] = False
    augment: ClassVar[bool] = False
    evaluated: ClassVar[bool] = True
    keeps_statistics: ClassVar[bool] = True
    helpers: ClassVar[frozenset[str]] = frozenset({"normalize"})

    def script_tensors(self) -> dict[str, Any]:
        return {"mean": _numbers(self.mean), "std": _numbers(self.std)}

    def per_channel(self, image: bool | None) -> bool | None:
        """Whether the script reshapes the statistics to [C, 1, 1]: None when that is known
        only once the data is loaded (an npz may hold images or not)."""
        if not (isinstance(self.mean, tuple) or isinstance(self.std, tuple)):
            return False
        return None if image is None else bool(image)

    def problems(self) -> list[Problem]:
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        return [Problem("`std` must be positive", field="std")] if any(s <= 0 for s in stds) else []

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import normalize

        mean, std = _stat(self.mean, train_x), _stat(self.std, train_x)
        return lambda x, g: normalize(x, mean.to(x.device), std.to(x.device))

    def apply(self, shape: Shape) -> Shape:
        for name in ("mean", "std"):
            value = getattr(self, name)
            if isinstance(value, tuple) and shape and len(value) not in (1, shape[0]):
                raise Problem(
                    f"`{name}` has {len(value)} values but the samples {fmt_shape(shape)} "
                    f"have {shape[0]} channel{'s' * (shape[0] != 1)}",
                    field=name,
                )
        return shape


@TRANSFORMS.register
class Standardize(Transform):
    """Scale each feature to zero mean and unit variance, with statistics of the training split
    (sources held in memory; image folders stream, so give them normalize(mean, std))."""

    kind: Literal["standardize"] = "standardize"
    image_only: ClassVar[bool] = False
    augment: ClassVar[bool] = False
    statistics: ClassVar[bool] = True
    evaluated: ClassVar[bool] = True
    keeps_statistics: ClassVar[bool] = True
    helpers: ClassVar[frozenset[str]] = frozenset({"normalize"})

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import normalize

        mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-8)
        return lambda x, g: normalize(x, mean.to(x.device), std.to(x.device))

    def deployed(self, train_x: Any) -> dict[str, Any]:
        """The statistics themselves (one per feature), since a deployed model has no training split."""
        return {"transform": self.kind_name(), "mean": train_x.mean(0).tolist(), "std": train_x.std(0).tolist()}

    @classmethod
    def restored(cls, record: dict[str, Any], probe: Any) -> Callable[[Any], Any] | None:
        import torch

        from netspec.verbatim.data import normalize

        mean = torch.tensor(record["mean"], dtype=torch.float32)
        std = torch.tensor(record["std"], dtype=torch.float32).clamp(min=1e-8)
        return lambda x: normalize(x, mean.to(x.device), std.to(x.device))


@TRANSFORMS.register
class RandomFlip(Transform):
    """Flip training images with probability p."""

    kind: Literal["random_flip"] = "random_flip"
    p: Fraction = Field(0.5, description="probability of flipping")
    axis: Literal["horizontal", "vertical"] = Field("horizontal", description="flip direction")
    positional: ClassVar = ("p",)
    helpers: ClassVar[frozenset[str]] = frozenset({"random_flip"})

    def dim(self) -> int:
        return -1 if self.axis == "horizontal" else -2

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import random_flip

        return lambda x, g: random_flip(x, g, self.p, self.dim())


@TRANSFORMS.register
class RandomCrop(Transform):
    """Pad training images, then crop a random size×size window (test images are centre-cropped)."""

    kind: Literal["random_crop"] = "random_crop"
    size: Union[PosInt, tuple[PosInt, PosInt]] = Field(description="crop size: s or [h, w]")
    padding: NonNegInt = Field(0, description="zero padding on each side before cropping")
    positional: ClassVar = ("size",)
    evaluated: ClassVar[bool] = True  # evaluation images are centre-cropped
    helpers: ClassVar[frozenset[str]] = frozenset({"random_crop", "center_crop"})

    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import random_crop

        return lambda x, g: random_crop(x, g, self.hw(), self.padding)

    def eval_function(self, train_x: Any) -> Callable[[Any], Any] | None:
        from netspec.verbatim.data import center_crop

        return lambda x: center_crop(x, self.hw(), self.padding)

    def apply(self, shape: Shape) -> Shape:
        h, w = self.hw()
        if h > shape[1] + 2 * self.padding or w > shape[2] + 2 * self.padding:
            raise Problem(f"crop {h}×{w} is larger than the padded image {fmt_shape(shape)}", field="size")
        return (shape[0], h, w)


@TRANSFORMS.register
class RandomRotation(Transform):
    """Rotate training images by a random angle in [-degrees, degrees]."""

    kind: Literal["random_rotation"] = "random_rotation"
    degrees: Annotated[float, Field(gt=0, le=180)] = Field(description="largest rotation, in degrees")
    positional: ClassVar = ("degrees",)
    helpers: ClassVar[frozenset[str]] = frozenset({"random_rotation"})

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import random_rotation

        return lambda x, g: random_rotation(x, g, self.degrees)


@TRANSFORMS.register
class RandomShift(Transform):
    """Shift training images by up to `pixels` in each direction (zero fill)."""

    kind: Literal["random_shift"] = "random_shift"
    pixels: PosInt = Field(4, description="largest shift")
    positional: ClassVar = ("pixels",)
    helpers: ClassVar[frozenset[str]] = frozenset({"random_shift"})

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.verbatim.data import random_shift

        return lambda x, g: random_shift(x, g, self.pixels)
