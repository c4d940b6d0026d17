"""Dataset sources: parameters and what they tell the checker before any file is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union

from pydantic import Field

from netspec.language.span import Shape
from netspec.registry.base import (
    Op,
    PosInt,
    Problem,
    Registry,
)

if TYPE_CHECKING:  # the loaders live in netspec.runtime, which imports nothing from the registry
    from netspec.runtime.data_core import Arrays, DataPaths


@dataclass(frozen=True)
class Task:
    """What a source yields, as far as it is known before any file is read."""

    input_shape: Shape | None = None  # per sample
    target: str | None = None  # "class", "token" (one class per position), "value", or None: unknown
    classes: int | None = None
    target_shape: Shape | None = None
    image: bool | None = False  # None: unknown until the file is read (an npz may hold images)


Setting = tuple[str, Any, Union[str, None]]  # a constant of a script: name, value, the comment above it

FOUND = "relative to this script's folder, then to the data root (--data-dir)"


class Source(Op):
    """A data source. Besides its parameters, each class says everything the backends need:
    `load` (the arrays, for netspec run) and, for emitted scripts, its template
    sources/<kind>.py.j2, the constants it defines, the modules it imports and the functions
    of netspec/verbatim/readers.py it copies."""

    has_test: ClassVar[bool] = False  # the data has a test split of its own; else one is held out
    streams: ClassVar[bool] = False  # read from disk batch by batch while training, never whole
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib"})  # the modules its script code imports
    script_helpers: ClassVar[frozenset[str]] = frozenset()  # netspec/verbatim/readers.py functions it copies
    load_argument: ClassVar[str] = "root"  # what the script's load_data takes: the data root, or the seed

    def task(self) -> Task:
        return Task()

    def load(self, paths: DataPaths) -> Arrays:
        """The source's arrays, read from files (under `paths`) or generated."""
        raise NotImplementedError

    def script_imports(self) -> frozenset[str]:
        """The modules the script's code for this source imports."""
        return self.script_modules

    def script_settings(self) -> list[Setting]:
        """The constants the script defines for this source, in order."""
        return []

    @classmethod
    def template(cls) -> str:
        return f"sources/{cls.kind_name()}.py.j2"


SOURCES: Registry[type[Source]] = Registry("source")


class _Idx(Source):
    """The IDX files of MNIST and Fashion-MNIST, downloaded with checksums when missing."""

    has_test: ClassVar[bool] = True
    script_modules: ClassVar[frozenset[str]] = frozenset({"gzip", "hashlib", "sys", "urllib.request"})

    def task(self) -> Task:
        return Task((1, 28, 28), "class", 10, image=True)

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_standard import load_idx_set

        return load_idx_set(self.kind_name(), paths)

    def script_settings(self) -> list[Setting]:
        from netspec.runtime.data_standard import CHECKSUMS, IDX_FILES, IDX_SETS

        spec = IDX_SETS[self.kind_name()]
        digests = {n: CHECKSUMS[f"{spec.folder}/{n}"].sha256 for pair in IDX_FILES.values() for n in pair}
        title = f"{spec.title}: the original files under the data root, and their published sha256"
        return [("DATA_FOLDER", spec.folder, title), ("MIRRORS", spec.mirrors, None), ("SHA256", digests, None)]


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
    has_test: ClassVar[bool] = True
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib", "sys", "tarfile", "urllib.request"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"cifar_records"})

    def task(self) -> Task:
        return Task((3, 32, 32), "class", 10, image=True)

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_standard import load_cifar10

        return load_cifar10(paths)

    def script_settings(self) -> list[Setting]:
        from netspec.runtime import data_standard as std

        note = "CIFAR-10, the binary version: downloaded (md5 checked) and extracted into the data root"
        return [
            ("CIFAR_URL", std.CIFAR_URL, note),
            ("CIFAR_MD5", std.CIFAR_MD5, None),
            ("DATA_FOLDER", std.CIFAR_FOLDER, None),
            ("TRAIN_FILES", list(std.CIFAR_TRAIN), None),
            ("TEST_FILE", std.CIFAR_TEST, None),
        ]


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

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_files import load_csv

        return load_csv(paths, self.path, self.target, self.task_type, self.delimiter)

    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib", "re"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"csv_rows", "csv_target"})

    def script_imports(self) -> frozenset[str]:
        return self.script_modules | ({"gzip"} if self.path.endswith(".gz") else set())

    def script_settings(self) -> list[Setting]:
        return [
            ("DATA_PATH", self.path, FOUND),
            ("TARGET", self.target, None),
            ("DELIMITER", self.delimiter, None),
            ("TASK_TYPE", self.task_type, "auto: classes, unless the targets are numbers and not all integers"),
        ]


@SOURCES.register
class Npz(Source):
    """A NumPy .npz archive with arrays `x` (inputs) and `y` (targets)."""

    kind: Literal["npz"] = "npz"
    path: str = Field(description="file path, relative to the spec or the data root")
    x: str = Field("x", description="name of the input array")
    y: str = Field("y", description="name of the target array")
    positional: ClassVar = ("path",)
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib", "zipfile"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"npz_inputs", "npz_targets"})

    def task(self) -> Task:
        return Task(image=None)  # uint8 [N, C, H, W] arrays are images; known once loaded

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_files import load_npz

        return load_npz(paths, self.path, self.x, self.y)

    def script_settings(self) -> list[Setting]:
        return [("DATA_PATH", self.path, FOUND), ("X_NAME", self.x, None), ("Y_NAME", self.y, None)]


@SOURCES.register
class ImageFolder(Source):
    """Images in one sub-folder per class (streamed from disk), resized to `size`."""

    kind: Literal["image_folder"] = "image_folder"
    path: str = Field(description="folder with one sub-folder per class")
    size: Union[PosInt, tuple[PosInt, PosInt]] = Field(64, description="resize to size×size or [h, w]")
    channels: Literal[1, 3] = Field(3, description="1 for greyscale, 3 for RGB")
    positional: ClassVar = ("path",)
    streams: ClassVar[bool] = True
    script_helpers: ClassVar[frozenset[str]] = frozenset({"decode_image", "image_index", "folder_digest"})

    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def task(self) -> Task:
        return Task((self.channels, *self.hw()), "class", image=True)

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_files import load_image_folder

        return load_image_folder(paths, self.path, self.hw(), self.channels)

    def script_settings(self) -> list[Setting]:
        from netspec.runtime.data_core import IMAGE_SUFFIXES

        return [
            ("DATA_PATH", self.path, FOUND),
            ("SIZE", self.hw(), "[height, width] after resizing"),
            ("IMAGE_SUFFIXES", tuple(sorted(IMAGE_SUFFIXES)), None),
        ]


@SOURCES.register
class Text(Source):
    """Character-level language modelling on a text file: each sample is seq_len characters,
    the target the same characters shifted by one."""

    kind: Literal["text"] = "text"
    path: str = Field(description="a UTF-8 text file, relative to the spec or the data root")
    seq_len: PosInt = Field(64, description="characters per sample")
    positional: ClassVar = ("path",)
    script_helpers: ClassVar[frozenset[str]] = frozenset({"char_windows"})

    def task(self) -> Task:
        return Task((self.seq_len,), "token")

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_files import load_text

        return load_text(paths, self.path, self.seq_len)

    def script_settings(self) -> list[Setting]:
        return [("DATA_PATH", self.path, FOUND), ("SEQ_LEN", self.seq_len, "characters per sample")]


@SOURCES.register
class Arithmetic(Source):
    """Synthetic addition: inputs [a, b] drawn uniformly from [low, high), target [a + b]."""

    kind: Literal["arithmetic"] = "arithmetic"
    samples: PosInt = Field(10000, description="training pairs (the test split has a fifth as many)")
    low: float = Field(0.0, description="smallest operand")
    high: float = Field(10.0, description="largest operand (exclusive)")
    has_test: ClassVar[bool] = True
    script_modules: ClassVar[frozenset[str]] = frozenset()
    script_helpers: ClassVar[frozenset[str]] = frozenset({"addition_pairs"})
    load_argument: ClassVar[str] = "seed"

    def problems(self) -> list[Problem]:
        return [Problem("`high` must be greater than `low`", field="high")] if self.high <= self.low else []

    def task(self) -> Task:
        return Task((2,), "value", target_shape=(1,))

    def load(self, paths: DataPaths) -> Arrays:
        from netspec.runtime.data_files import load_arithmetic

        return load_arithmetic(paths, self.samples, self.low, self.high)

    def script_settings(self) -> list[Setting]:
        return [("SAMPLES", self.samples, "training pairs"), ("LOW", self.low, None), ("HIGH", self.high, None)]
