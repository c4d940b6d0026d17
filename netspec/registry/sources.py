"""Dataset sources: parameters and what they tell the checker before any file is read."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, Union

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


IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})

Setting = tuple[str, Any, Union[str, None]]  # a constant of a script: name, value, the comment above it

FOUND = "relative to this script's folder, then to the data root (--data-dir)"


class Source(Op):
    """A data source. Besides its parameters, each class says everything the backends need:
    `loader` (the function of netspec.runtime's data modules that reads it, as `torch_class`
    names a loss's torch class: the registry imports nothing of the runtime) and, for emitted
    scripts, its template sources/<kind>.py.j2, the constants it defines, the modules it
    imports and the functions of netspec/verbatim/readers.py it copies."""

    has_test: ClassVar[bool] = False  # the data has a test split of its own; else one is held out
    streams: ClassVar[bool] = False  # read from disk batch by batch while training, never whole
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib"})  # the modules its script code imports
    script_helpers: ClassVar[frozenset[str]] = frozenset()  # netspec/verbatim/readers.py functions it copies
    load_argument: ClassVar[str] = "root"  # what the script's load_data takes: the data root, or the seed
    loader: ClassVar[str] = ""  # its loader in netspec.runtime.data_standard or data_files: f(source, paths)
    # why a validation split held out at random would be wrong for it (None: it is fine)
    no_validation: ClassVar[str | None] = None

    def task(self) -> Task:
        return Task()

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


class Checksum(NamedTuple):
    sha256: str
    md5: str


# (images, labels) per split, as every mirror of an IDX dataset names them
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


class _Idx(Source):
    """The IDX files of MNIST and Fashion-MNIST, downloaded with checksums when missing.

    Checksums of the original .gz files: md5 from the published lists (torchvision, the
    datasets' pages, repeated in /work/shared/data/README.md); sha256 computed from the
    byte-identical copies in /work/shared/data, whose md5s match those lists."""

    has_test: ClassVar[bool] = True
    script_modules: ClassVar[frozenset[str]] = frozenset({"gzip", "hashlib", "sys", "urllib.request"})
    loader: ClassVar[str] = "load_idx_source"
    title: ClassVar[str]
    folder: ClassVar[str]  # under the data root
    mirrors: ClassVar[tuple[str, ...]]  # base URLs, tried in order
    classes: ClassVar[tuple[str, ...]]
    checksums: ClassVar[dict[str, Checksum]]  # file name -> its published digests

    def task(self) -> Task:
        return Task((1, 28, 28), "class", 10, image=True)

    def script_settings(self) -> list[Setting]:
        digests = {name: self.checksums[name].sha256 for pair in IDX_FILES.values() for name in pair}
        title = f"{self.title}: the original files under the data root, and their published sha256"
        return [("DATA_FOLDER", self.folder, title), ("MIRRORS", self.mirrors, None), ("SHA256", digests, None)]


@SOURCES.register
class Mnist(_Idx):
    """MNIST handwritten digits: 60,000 training and 10,000 test images, 1×28×28, 10 classes."""

    kind: Literal["mnist"] = "mnist"
    title: ClassVar[str] = "MNIST"
    folder: ClassVar[str] = "mnist"
    mirrors: ClassVar[tuple[str, ...]] = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
    )
    classes: ClassVar[tuple[str, ...]] = tuple("0123456789")
    checksums: ClassVar[dict[str, Checksum]] = {
        "train-images-idx3-ubyte.gz": Checksum(
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "f68b3c2dcbeaaa9fbdd348bbdeb94873"
        ),
        "train-labels-idx1-ubyte.gz": Checksum(
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "d53e105ee54ea40749a09fcbcd1e9432"
        ),
        "t10k-images-idx3-ubyte.gz": Checksum(
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "9fb629c4189551a2d022fa330f9573f3"
        ),
        "t10k-labels-idx1-ubyte.gz": Checksum(
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "ec29112dd5afa0611ce80d1b7f02629c"
        ),
    }


@SOURCES.register
class FashionMnist(_Idx):
    """Fashion-MNIST clothing images: 60,000 + 10,000, 1×28×28, 10 classes."""

    kind: Literal["fashion_mnist"] = "fashion_mnist"
    title: ClassVar[str] = "Fashion-MNIST"
    folder: ClassVar[str] = "fashion-mnist"
    mirrors: ClassVar[tuple[str, ...]] = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    classes: ClassVar[tuple[str, ...]] = (
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"
    )  # fmt: skip
    checksums: ClassVar[dict[str, Checksum]] = {
        "train-images-idx3-ubyte.gz": Checksum(
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
        ),
        "train-labels-idx1-ubyte.gz": Checksum(
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "25c81989df183df01b3e8a0aad5dffbe"
        ),
        "t10k-images-idx3-ubyte.gz": Checksum(
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "bef4ecab320f06d8554ea6380940ec79"
        ),
        "t10k-labels-idx1-ubyte.gz": Checksum(
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "bb300cfdad3c16e7a12a480ee83cd310"
        ),
    }


@SOURCES.register
class Cifar10(Source):
    """CIFAR-10 colour images (binary version): 50,000 + 10,000, 3×32×32, 10 classes."""

    kind: Literal["cifar10"] = "cifar10"
    has_test: ClassVar[bool] = True
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib", "sys", "tarfile", "urllib.request"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"cifar_records"})
    loader: ClassVar[str] = "load_cifar10"
    url: ClassVar[str] = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    md5: ClassVar[str] = "c32a1d4ab5d03f1284b67883e8d87530"  # of the archive
    archive: ClassVar[str] = "cifar-10-binary.tar.gz"
    folder: ClassVar[str] = "cifar-10-batches-bin"  # what the archive holds, extracted under the data root
    train_files: ClassVar[tuple[str, ...]] = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
    test_file: ClassVar[str] = "test_batch.bin"
    classes: ClassVar[tuple[str, ...]] = (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"
    )  # fmt: skip

    def task(self) -> Task:
        return Task((3, 32, 32), "class", 10, image=True)

    def script_settings(self) -> list[Setting]:
        note = "CIFAR-10, the binary version: downloaded (md5 checked) and extracted into the data root"
        return [
            ("CIFAR_URL", self.url, note),
            ("CIFAR_MD5", self.md5, None),
            ("DATA_FOLDER", self.folder, None),
            ("TRAIN_FILES", list(self.train_files), None),
            ("TEST_FILE", self.test_file, None),
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
    loader: ClassVar[str] = "load_csv"
    script_modules: ClassVar[frozenset[str]] = frozenset({"csv", "hashlib", "re"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"csv_rows", "csv_target"})

    def task(self) -> Task:
        target = {"classification": "class", "regression": "value"}.get(self.task_type)
        return Task(target=target)

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
    script_modules: ClassVar[frozenset[str]] = frozenset({"hashlib", "io", "zipfile"})
    script_helpers: ClassVar[frozenset[str]] = frozenset({"npz_inputs", "npz_targets"})
    loader: ClassVar[str] = "load_npz"

    def task(self) -> Task:
        return Task(image=None)  # uint8 [N, C, H, W] arrays are images; known once loaded

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
    loader: ClassVar[str] = "load_image_folder"

    def hw(self) -> tuple[int, int]:
        return (self.size, self.size) if isinstance(self.size, int) else self.size

    def task(self) -> Task:
        return Task((self.channels, *self.hw()), "class", image=True)

    def script_settings(self) -> list[Setting]:
        return [
            ("DATA_PATH", self.path, FOUND),
            ("SIZE", self.hw(), "[height, width] after resizing"),
            ("IMAGE_SUFFIXES", tuple(sorted(IMAGE_SUFFIXES)), None),
        ]


@SOURCES.register
class Text(Source):
    """Character-level language modelling on a text file, split as nanoGPT splits it: the
    training samples are the seq_len characters at every offset of the first part of the text
    (so a shuffled batch is a batch of random offsets), the test split the non-overlapping
    windows of its last `held_out` part, whole; each target is its sample shifted by one."""

    kind: Literal["text"] = "text"
    path: str = Field(description="a UTF-8 text file, relative to the spec or the data root")
    seq_len: PosInt = Field(64, description="characters per sample")
    held_out: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.1, description="the last part of the text, held out as the test split"
    )
    positional: ClassVar = ("path",)
    has_test: ClassVar[bool] = True
    script_helpers: ClassVar[frozenset[str]] = frozenset({"char_windows"})
    loader: ClassVar[str] = "load_text"
    no_validation: ClassVar[str | None] = (
        "its training windows start at every offset, so windows held out at random would share their "
        "text with the training windows (and copy them all); its last `held_out` part is the held-out split"
    )

    def task(self) -> Task:
        return Task((self.seq_len,), "token")

    def script_settings(self) -> list[Setting]:
        return [
            ("DATA_PATH", self.path, FOUND),
            ("SEQ_LEN", self.seq_len, "characters per sample"),
            ("HELD_OUT", self.held_out, "the last part of the text, the test split"),
        ]


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
    loader: ClassVar[str] = "load_arithmetic"

    def problems(self) -> list[Problem]:
        return [Problem("`high` must be greater than `low`", field="high")] if self.high <= self.low else []

    def task(self) -> Task:
        return Task((2,), "value", target_shape=(1,))

    def script_settings(self) -> list[Setting]:
        return [("SAMPLES", self.samples, "training pairs"), ("LOW", self.low, None), ("HIGH", self.high, None)]


@SOURCES.register
class Ts(Source):
    """Time series classification in the sktime .ts format (the UCR/UEA archives): the files
    `<path>_TRAIN.ts` and `<path>_TEST.ts`. Each sample is float32 [channels, length]
    (channels: the series' dimensions); labels are indices into the classes in the order
    @classLabel lists them. Series of different lengths are padded with zeros at the end
    to the longest in train and test."""

    kind: Literal["ts"] = "ts"
    path: str = Field(description="the files' common prefix, e.g. 'ucr/GunPoint' for ucr/GunPoint_TRAIN.ts")
    channels: Union[PosInt, None] = Field(None, description="dimensions per series, checked when the files are read")
    length: Union[PosInt, None] = Field(None, description="series length after padding, checked when read")
    positional: ClassVar = ("path",)
    has_test: ClassVar[bool] = True
    script_helpers: ClassVar[frozenset[str]] = frozenset({"ts_series", "ts_stack"})
    loader: ClassVar[str] = "load_ts"

    def files(self) -> tuple[str, str]:
        return f"{self.path}_TRAIN.ts", f"{self.path}_TEST.ts"

    def task(self) -> Task:
        known = self.channels is not None and self.length is not None
        return Task((self.channels, self.length) if known else None, "class")  # type: ignore[arg-type]

    def script_settings(self) -> list[Setting]:
        train, test = self.files()
        return [("TRAIN_PATH", train, FOUND), ("TEST_PATH", test, None)]
