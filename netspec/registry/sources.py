"""Dataset sources: parameters and what they tell the checker before any file is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Union

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Op,
    PosInt,
    Problem,
    Registry,
)


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
