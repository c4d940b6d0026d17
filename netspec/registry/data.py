"""Dataset sources and transforms: parameters and what they tell the checker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar, Literal, Union

from pydantic import Field

from netspec.registry.base import Fraction, NonNegInt, Op, PosInt, Problem, Registry, fmt_shape
from netspec.span import Shape


@dataclass(frozen=True)
class Task:
    """What a source yields, as far as it is known before any file is read."""

    input_shape: Shape | None = None  # per sample
    target: str | None = None  # "class", "token" (one class per position), "value", or None: unknown
    classes: int | None = None
    target_shape: Shape | None = None
    image: bool | None = False  # None: unknown until the file is read (an npz may hold images)


class Source(Op):
    def task(self) -> Task:
        return Task()


SOURCES: Registry[type[Source]] = Registry("source")


class _Idx(Source):
    def task(self) -> Task:
        return Task((1, 28, 28), "class", 10, image=True)


@SOURCES.register
class Mnist(_Idx):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 1×28×28, 10 classes."""

    kind: Literal["mnist"] = "mnist"


@SOURCES.register
class FashionMnist(_Idx):
    """Fashion-MNIST clothing images: 60,000 + 10,000, 1×28×28, 10 classes."""

    kind: Literal["fashion_mnist"] = "fashion_mnist"


@SOURCES.register
class Cifar10(Source):
    """CIFAR-10 colour images (binary version): 50,000 + 10,000, 3×32×32, 10 classes."""

    kind: Literal["cifar10"] = "cifar10"

    def task(self) -> Task:
        return Task((3, 32, 32), "class", 10, image=True)


@SOURCES.register
class Csv(Source):
    """A CSV file with a header row; every column but `target` is a numeric feature."""

    kind: Literal["csv"] = "csv"
    path: str = Field(description="file path, relative to the spec or the data root")
    target: str = Field(description="name of the target column")
    task_type: Literal["classification", "regression", "auto"] = Field(
        "auto", description="auto: integer or text targets are classes, others values"
    )
    delimiter: str = Field(",", description="field separator")
    positional: ClassVar = ("path",)

    def task(self) -> Task:
        target = {"classification": "class", "regression": "value"}.get(self.task_type)
        return Task(target=target)


@SOURCES.register
class Npz(Source):
    """A NumPy .npz archive with arrays `x` (inputs) and `y` (targets)."""

    kind: Literal["npz"] = "npz"
    path: str = Field(description="file path, relative to the spec or the data root")
    x: str = Field("x", description="name of the input array")
    y: str = Field("y", description="name of the target array")
    positional: ClassVar = ("path",)

    def task(self) -> Task:
        return Task(image=None)  # uint8 [N, C, H, W] arrays are images; known once loaded


@SOURCES.register
class ImageFolder(Source):
    """Images in one sub-folder per class (streamed from disk), resized to `size`."""

    kind: Literal["image_folder"] = "image_folder"
    path: str = Field(description="folder with one sub-folder per class")
    size: Union[PosInt, tuple[PosInt, PosInt]] = Field(64, description="resize to size×size or [h, w]")
    channels: Literal[1, 3] = Field(3, description="1 for greyscale, 3 for RGB")
    positional: ClassVar = ("path",)

    def task(self) -> Task:
        h, w = (self.size, self.size) if isinstance(self.size, int) else self.size
        return Task((self.channels, h, w), "class", image=True)


@SOURCES.register
class Text(Source):
    """Character-level language modelling on a text file: each sample is seq_len characters,
    the target the same characters shifted by one."""

    kind: Literal["text"] = "text"
    path: str = Field(description="a UTF-8 text file, relative to the spec or the data root")
    seq_len: PosInt = Field(64, description="characters per sample")
    positional: ClassVar = ("path",)

    def task(self) -> Task:
        return Task((self.seq_len,), "token")


@SOURCES.register
class Arithmetic(Source):
    """Synthetic addition: inputs [a, b] drawn uniformly from [low, high), target [a + b]."""

    kind: Literal["arithmetic"] = "arithmetic"
    samples: PosInt = Field(10000, description="training pairs (the test split has a fifth as many)")
    low: float = Field(0.0, description="smallest operand")
    high: float = Field(10.0, description="largest operand (exclusive)")

    def problems(self) -> list[Problem]:
        return [Problem("`high` must be greater than `low`", field="high")] if self.high <= self.low else []

    def task(self) -> Task:
        return Task((2,), "value", target_shape=(1,))


# --- transforms ---------------------------------------------------------------------


class Transform(Op):
    image_only: ClassVar[bool] = True
    augment: ClassVar[bool] = True  # applied to training batches only
    statistics: ClassVar[bool] = False  # computed over the whole training split (not streamable)

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


def _stat(value: float | tuple[float, ...], like: Any) -> Any:
    """A per-channel statistic shaped to broadcast over a batch of images or feature rows."""
    import torch

    t = torch.tensor(value, dtype=torch.float32)
    return t.view(-1, 1, 1) if t.dim() and like.dim() == 4 else t


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

    def problems(self) -> list[Problem]:
        stds = self.std if isinstance(self.std, tuple) else (self.std,)
        return [Problem("`std` must be positive", field="std")] if any(s <= 0 for s in stds) else []

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import normalize

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

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import normalize

        mean, std = train_x.mean(0), train_x.std(0).clamp(min=1e-8)
        return lambda x, g: normalize(x, mean.to(x.device), std.to(x.device))


@TRANSFORMS.register
class RandomFlip(Transform):
    """Flip training images with probability p."""

    kind: Literal["random_flip"] = "random_flip"
    p: Fraction = Field(0.5, description="probability of flipping")
    axis: Literal["horizontal", "vertical"] = Field("horizontal", description="flip direction")
    positional: ClassVar = ("p",)

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import random_flip

        dim = -1 if self.axis == "horizontal" else -2
        return lambda x, g: random_flip(x, g, self.p, dim)


@TRANSFORMS.register
class RandomCrop(Transform):
    """Pad training images, then crop a random size×size window (test images are centre-cropped)."""

    kind: Literal["random_crop"] = "random_crop"
    size: Union[PosInt, tuple[PosInt, PosInt]] = Field(description="crop size: s or [h, w]")
    padding: NonNegInt = Field(0, description="zero padding on each side before cropping")
    positional: ClassVar = ("size",)

    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import random_crop

        return lambda x, g: random_crop(x, g, self.hw(), self.padding)

    def eval_function(self, train_x: Any) -> Callable[[Any], Any] | None:
        from netspec.training import center_crop

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

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import random_rotation

        return lambda x, g: random_rotation(x, g, self.degrees)


@TRANSFORMS.register
class RandomShift(Transform):
    """Shift training images by up to `pixels` in each direction (zero fill)."""

    kind: Literal["random_shift"] = "random_shift"
    pixels: PosInt = Field(4, description="largest shift")
    positional: ClassVar = ("pixels",)

    def function(self, train_x: Any) -> Callable[[Any, Any], Any]:
        from netspec.training import random_shift

        return lambda x, g: random_shift(x, g, self.pixels)
