"""Dataset sources -> numpy arrays for `netspec run`.

Local files come first; missing standard datasets are downloaded with checksums; every failure
is a DataError that names the file and says where it belongs. Only numpy and the standard library
are imported here, so the torch-free commands and tests stay torch-free; Pillow is imported on the
first decoded image.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import http.client
import io
import math
import os
import re
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any, Callable, NamedTuple

import numpy as np

if TYPE_CHECKING:
    from netspec.registry.sources import Arithmetic, Csv, ImageFolder, Npz, Source, Text

ROOT_HELP = "point netspec at a data root with --data-dir DIR or NETSPEC_DATA=DIR"


class DataError(Exception):
    """A dataset that cannot be loaded: `message` says what and which file, `hint` what to do."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class ImageFiles:
    """Image files decoded on demand, each to uint8 [C, H, W]: the samples of a streamed source.

    Indexing with a slice or a sequence of positions gives the subset, so that splitting and
    limiting work on it as on an array, without decoding anything."""

    def __init__(self, files: list[Path], size: tuple[int, int], channels: int) -> None:
        self.files, self.size, self.channels = files, size, channels

    def __len__(self) -> int:
        return len(self.files)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.files), self.channels, *self.size)

    def __getitem__(self, key: Any) -> ImageFiles:
        if isinstance(key, slice):
            return ImageFiles(self.files[key], self.size, self.channels)
        positions = key.tolist() if hasattr(key, "tolist") else list(key)
        return ImageFiles([self.files[i] for i in positions], self.size, self.channels)

    def read(self, i: int) -> np.ndarray:
        return read_image(self.files[i], self.size, self.channels)


@dataclass
class Arrays:
    """A loaded dataset. Images uint8 [N, C, H, W] (or ImageFiles, streamed); class labels int64 [N];
    regression targets float32 [N, 1]; text int64 [N, seq_len]; tabular features float32 [N, F]."""

    x_train: np.ndarray | ImageFiles
    y_train: np.ndarray
    x_test: np.ndarray | None = None  # None: the source has no test split
    y_test: np.ndarray | None = None
    classes: list[str] | None = None
    files: dict[str, str] = field(default_factory=dict)  # file read -> sha256, for the run record
    vocab: list[str] | None = None


@dataclass(frozen=True)
class Context:
    """What every loader may need besides the source's own parameters."""

    root: Path
    spec_dir: Path | None
    seed: int
    download: bool


def resolve_root(data_dir: str | None = None) -> Path:
    """--data-dir, else $NETSPEC_DATA, else the user cache: one shared place for big downloads."""
    chosen = data_dir or os.environ.get("NETSPEC_DATA")
    if not chosen:
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        chosen = str(Path(cache) / "netspec")
    return Path(chosen).expanduser().resolve()


def load(source: Source, root: Path, spec_dir: Path | None, seed: int, download: bool = True) -> Arrays:
    """The arrays of `source`, read from files under `root` (or next to the spec) or generated."""
    kind = getattr(source, "kind", None)
    loader = LOADERS.get(str(kind))
    if loader is None:
        raise DataError(f"netspec cannot load the source `{kind}`", f"sources it loads: {', '.join(LOADERS)}")
    return loader(source, Context(Path(root), spec_dir, seed, download))


# --- files, checksums and downloads ---------------------------------------------------


def sha256_file(path: Path) -> str:
    return _file_digest(path, hashlib.sha256())


def _file_digest(path: Path, h: Any) -> str:
    with open(path, "rb") as f:  # in chunks: archives can be far larger than memory allows
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return str(h.hexdigest())


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e


def _gunzip(data: bytes, path: Path) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as e:  # bad header, bad CRC, stream cut short
        raise DataError(f"{path} is not a valid gzip file ({e})", "delete it to download it again") from e


def download(url: str, dest: Path, sha256: str | None = None, md5: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `url` to `dest` through a temp file in the same folder, renamed only once the
    checksums match, so an interrupted or corrupted download never looks like a finished file."""
    dest = Path(dest)
    print(f"netspec: downloading {url} -> {dest}", file=sys.stderr)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    except OSError as e:
        raise DataError(f"cannot write to {dest.parent}: {e.strerror or e}", ROOT_HELP) from e
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            digests = _copy_url(url, out, timeout)
        _check_digests(url, digests, sha256, md5)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _copy_url(url: str, out: IO[bytes], timeout: float) -> tuple[str, str]:
    h256, h5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                h256.update(chunk)
                h5.update(chunk)
    except (OSError, ValueError, http.client.HTTPException) as e:  # URLError is an OSError
        raise DataError(f"could not download {url}: {getattr(e, 'reason', None) or e}") from e
    return h256.hexdigest(), h5.hexdigest()


def _check_digests(url: str, got: tuple[str, str], sha256: str | None, md5: str | None) -> None:
    for algo, want, have in (("sha256", sha256, got[0]), ("md5", md5, got[1])):
        if want and want != have:
            raise DataError(f"the download of {url} has {algo} {have}, not {want}; it was not saved")


def _missing(folder: Path, names: list[str]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def _missing_error(title: str, folder: Path, names: list[str], origin: str, reason: str | None) -> DataError:
    why = f"; downloading failed: {reason}" if reason else " (downloading is turned off)"
    return DataError(
        f"{title} files missing from {folder}: {', '.join(names)}{why}",
        f"put {'it' if len(names) == 1 else 'them'} in {folder} ({origin}), "
        f"or {ROOT_HELP} (a root with a {folder.name}/ folder)",
    )


def _find(path: str, ctx: Context, what: str) -> Path:
    """A path from the spec: absolute as written, else next to the spec, else under the data root."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [base / p for base in (ctx.spec_dir, ctx.root) if base is not None]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataError(
        f"{what} {path!r} not found: looked for {' and '.join(map(str, candidates))}",
        f"paths are relative to the spec's folder, then to the data root {ctx.root}; {ROOT_HELP}",
    )


# --- MNIST and Fashion-MNIST: IDX files ------------------------------------------------


class Checksum(NamedTuple):
    sha256: str
    md5: str


# The original .gz files. md5: the published lists (torchvision, the datasets' pages, repeated in
# /work/shared/data/README.md); sha256: computed from the byte-identical copies in /work/shared/data,
# whose md5s match those lists (and equal the sha256s other loaders pin).
CHECKSUMS: dict[str, Checksum] = {
    "mnist/train-images-idx3-ubyte.gz": Checksum(
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", "f68b3c2dcbeaaa9fbdd348bbdeb94873"
    ),
    "mnist/train-labels-idx1-ubyte.gz": Checksum(
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", "d53e105ee54ea40749a09fcbcd1e9432"
    ),
    "mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", "9fb629c4189551a2d022fa330f9573f3"
    ),
    "mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", "ec29112dd5afa0611ce80d1b7f02629c"
    ),
    "fashion-mnist/train-images-idx3-ubyte.gz": Checksum(
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"
    ),
    "fashion-mnist/train-labels-idx1-ubyte.gz": Checksum(
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", "25c81989df183df01b3e8a0aad5dffbe"
    ),
    "fashion-mnist/t10k-images-idx3-ubyte.gz": Checksum(
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", "bef4ecab320f06d8554ea6380940ec79"
    ),
    "fashion-mnist/t10k-labels-idx1-ubyte.gz": Checksum(
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", "bb300cfdad3c16e7a12a480ee83cd310"
    ),
}

# (images, labels) per split, as every mirror names them
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclass(frozen=True)
class IdxSet:
    """One IDX dataset: its folder under the data root, where to fetch it, its class names."""

    title: str
    folder: str
    mirrors: tuple[str, ...]  # base URLs, tried in order
    classes: tuple[str, ...]


IDX_SETS: dict[str, IdxSet] = {
    "mnist": IdxSet(
        "MNIST",
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        tuple("0123456789"),
    ),
    "fashion_mnist": IdxSet(
        "Fashion-MNIST",
        "fashion-mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}


def parse_idx(data: bytes, ndim: int, name: str) -> np.ndarray:
    """An IDX array of unsigned bytes, checked against its header so a damaged file never half-loads."""
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name} is truncated: {len(data)} bytes, shorter than its {header}-byte IDX header")
    if data[:4] != bytes((0, 0, 0x08, ndim)):
        raise DataError(f"{name} is not an IDX file of {ndim}-dimensional unsigned bytes (magic 0x{data[:4].hex()})")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    size = math.prod(shape)
    if len(data) - header != size:
        dims = "×".join(map(str, shape))
        raise DataError(
            f"{name} holds {len(data) - header} bytes of data, but its header promises {dims} = {size}: "
            "the file is truncated or corrupt",
            "delete it to download it again",
        )
    return np.frombuffer(data, np.uint8, count=size, offset=header).reshape(shape).copy()


def load_idx(spec: IdxSet, root: Path, download: bool = True, verify: bool = True) -> Arrays:
    """The four IDX files of `spec` under root/spec.folder; `verify` checks them against CHECKSUMS
    (off only for generated test files)."""
    folder = root / spec.folder
    names = [n for pair in IDX_FILES.values() for n in pair]
    if missing := _missing(folder, names):
        reason = _fetch_idx(spec, folder, missing, verify) if download else None
        if still := _missing(folder, names):
            raise _missing_error(spec.title, folder, still, f"from {spec.mirrors[0]}", reason)
    files: dict[str, str] = {}
    split = {part: _idx_pair(spec, folder, pair, verify, files) for part, pair in IDX_FILES.items()}
    return Arrays(*split["train"], *split["test"], classes=list(spec.classes), files=files)


def _fetch_idx(spec: IdxSet, folder: Path, names: list[str], verify: bool) -> str | None:
    """Download each file from the first mirror that has it; the failure, or None."""
    for name in names:
        want = CHECKSUMS.get(f"{spec.folder}/{name}") if verify else None
        error = "no mirror is configured"
        for base in spec.mirrors:
            try:
                download(base + name, folder / name, want.sha256 if want else None, want.md5 if want else None)
                break
            except DataError as e:
                error = e.message
        else:
            return error
    return None


def _idx_pair(
    spec: IdxSet, folder: Path, pair: tuple[str, str], verify: bool, files: dict[str, str]
) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (_read_idx(spec, folder / name, ndim, verify, files) for name, ndim in zip(pair, (3, 1)))
    if len(images) != len(labels):
        raise DataError(f"{folder / pair[0]} has {len(images)} images but {folder / pair[1]} {len(labels)} labels")
    if labels.size and labels.max() >= len(spec.classes):
        raise DataError(f"{folder / pair[1]} has label {labels.max()}; {spec.title} has {len(spec.classes)} classes")
    return images[:, None], labels.astype(np.int64)


def _read_idx(spec: IdxSet, path: Path, ndim: int, verify: bool, files: dict[str, str]) -> np.ndarray:
    key = f"{spec.folder}/{path.name}"
    data = _read_bytes(path)
    digest = files[key] = _sha256(data)
    want = CHECKSUMS.get(key)
    if verify and want and digest != want.sha256:
        raise DataError(
            f"{path} has sha256 {digest}, not the published {want.sha256}: it is corrupt, truncated or another file",
            f"delete it to download it again, or replace it with the original from {spec.mirrors[0]}",
        )
    return parse_idx(_gunzip(data, path), ndim, str(path))


def _load_idx_source(source: Source, ctx: Context) -> Arrays:
    return load_idx(IDX_SETS[str(getattr(source, "kind", ""))], ctx.root, ctx.download)


# --- CIFAR-10: the binary version --------------------------------------------------------

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR_ARCHIVE = "cifar-10-binary.tar.gz"
CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
CIFAR_TEST = "test_batch.bin"
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then the R, G and B planes


def _load_cifar10(source: Source, ctx: Context) -> Arrays:
    folder = ctx.root / CIFAR_FOLDER
    names = [*CIFAR_TRAIN, CIFAR_TEST]
    if _missing(folder, names):
        reason = _fetch_cifar(ctx.root, ctx.download)
        if still := _missing(folder, names):
            raise _missing_error("CIFAR-10", folder, still, f"extracted from {CIFAR_URL}", reason)
    files: dict[str, str] = {}
    train = [_read_cifar(folder / name, files) for name in CIFAR_TRAIN]
    x_test, y_test = _read_cifar(folder / CIFAR_TEST, files)
    x, y = np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])
    return Arrays(x, y, x_test, y_test, classes=_cifar_classes(folder), files=files)


def _fetch_cifar(root: Path, download_ok: bool) -> str | None:
    """Extract the official archive, downloading it first when allowed; the failure, or None."""
    archive = root / CIFAR_ARCHIVE
    if not archive.is_file():
        if not download_ok:
            return None
        try:
            download(CIFAR_URL, archive, md5=CIFAR_MD5)
        except DataError as e:
            return e.message
    elif (md5 := _file_digest(archive, hashlib.md5(usedforsecurity=False))) != CIFAR_MD5:
        raise DataError(f"{archive} has md5 {md5}, not the published {CIFAR_MD5}", "delete it to download it again")
    extract_tar(archive, root, CIFAR_FOLDER)
    return None


def extract_tar(archive: Path, dest: Path, prefix: str) -> None:
    """Extract the regular files under `prefix/`. Links, devices and paths that climb out are refused,
    so a hostile archive cannot write outside `dest`."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                _extract_member(tar, member, archive, dest, prefix)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"cannot extract {archive}: {e}", "delete it to download it again") from e


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, dest: Path, prefix: str) -> None:
    parts = PurePosixPath(member.name).parts
    if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
        raise DataError(f"{archive} holds an unsafe entry {member.name!r}; refusing to extract it")
    if parts[:1] != (prefix,) or not member.isfile():
        return
    stream = tar.extractfile(member)
    if stream is not None:
        _write_atomic(dest.joinpath(*parts), stream)


def _write_atomic(dest: Path, stream: IO[bytes]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out)
        os.replace(name, dest)
    finally:
        Path(name).unlink(missing_ok=True)


def _read_cifar(path: Path, files: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    data = _read_bytes(path)
    files[f"{CIFAR_FOLDER}/{path.name}"] = _sha256(data)
    if not data or len(data) % CIFAR_RECORD:
        raise DataError(
            f"{path} is {len(data)} bytes, not a whole number of {CIFAR_RECORD}-byte records "
            "(1 label byte + 3×32×32 pixels): the file is truncated or corrupt",
            f"delete {path.parent} to download it again",
        )
    records = np.frombuffer(data, np.uint8).reshape(-1, CIFAR_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() >= len(CIFAR_CLASSES):
        raise DataError(f"{path} has label {labels.max()}: not the CIFAR-10 binary version (CIFAR-100?)")
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), labels


def _cifar_classes(folder: Path) -> list[str]:
    meta = folder / "batches.meta.txt"
    names = (
        [line.strip() for line in meta.read_text(errors="replace").splitlines() if line.strip()]
        if meta.is_file()
        else []
    )
    return names if len(names) == len(CIFAR_CLASSES) else list(CIFAR_CLASSES)


# --- CSV --------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")


def _load_csv(source: Csv, ctx: Context) -> Arrays:
    path = _find(source.path, ctx, "csv file")
    data = _read_bytes(path)
    header, rows, lines = _csv_rows(_gunzip(data, path) if path.suffix == ".gz" else data, path, source.delimiter)
    t = _target_index(header, source.target, path)
    cols = [i for i in range(len(header)) if i != t]
    if not cols:
        raise DataError(f"{path} has no feature columns besides the target {source.target!r}")
    x = _numeric(rows, cols, header, lines, path)
    y, classes = _csv_target([r[t].strip() for r in rows], source.task_type, path, header[t], lines)
    return Arrays(x, y, classes=classes, files={source.path: _sha256(data)})


def _csv_rows(data: bytes, path: Path, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (blank ones skipped) and each row's line number, for error messages."""
    try:
        reader = csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=delimiter)
        numbered = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from e
    except (csv.Error, TypeError) as e:  # TypeError: a delimiter that is not one character
        raise DataError(f"{path} cannot be read as CSV with delimiter {delimiter!r}: {e}") from e
    if len(numbered) < 2:
        raise DataError(f"{path} needs a header row and at least one data row")
    header = [name.strip() for name in numbered[0][1]]
    for line, row in numbered[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}, line {line}: {len(row)} fields, but the header has {len(header)}")
    return header, [row for _, row in numbered[1:]], [line for line, _ in numbered[1:]]


def _target_index(header: list[str], target: str, path: Path) -> int:
    if target in header:
        return header.index(target)
    close = difflib.get_close_matches(target, header, n=3, cutoff=0.5)
    close += [h for h in header if h.lower() == target.lower() and h not in close]
    hint = f"did you mean {' or '.join(map(repr, close))}?" if close else "name one of its columns as `target`"
    raise DataError(f"{path} has no column {target!r}; its columns: {', '.join(header)}", hint)


def _numeric(rows: list[list[str]], cols: list[int], header: list[str], lines: list[int], path: Path) -> np.ndarray:
    try:
        return np.array([[row[c] for c in cols] for row in rows]).astype(np.float32)
    except ValueError:
        pass  # cell by cell only on failure, to name the first bad cell
    out = np.empty((len(rows), len(cols)), np.float32)
    for r, (line, row) in enumerate(zip(lines, rows)):
        for j, c in enumerate(cols):
            try:
                out[r, j] = float(row[c])
            except ValueError:
                raise DataError(
                    f"{path}, line {line}, column {header[c]!r}: {row[c]!r} is not a number",
                    "every column but the target must be numeric: encode or drop it, fill in empty cells",
                ) from None
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_target(
    values: list[str], task_type: str, path: Path, column: str, lines: list[int]
) -> tuple[np.ndarray, list[str] | None]:
    """Class labels 0..k-1 (sorted names) for text, integer (auto) or classification targets,
    else float32 values [N, 1]."""
    integers = all(_INT.fullmatch(v) for v in values)
    numbers = integers or all(_is_number(v) for v in values)
    if task_type == "regression" or (task_type == "auto" and numbers and not integers):
        if not numbers:
            line, bad = next((n, v) for n, v in zip(lines, values) if not _is_number(v))
            raise DataError(f"{path}, line {line}: regression target {column!r} is {bad!r}, not a number")
        return np.array(values, dtype=np.float32)[:, None], None
    keys: list[Any] = [int(v) for v in values] if integers else values
    names = sorted(set(keys))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[k] for k in keys], dtype=np.int64), [str(n) for n in names]


# --- NumPy archives -----------------------------------------------------------------------


def _load_npz(source: Npz, ctx: Context) -> Arrays:
    path = _find(source.path, ctx, "npz file")
    data = _read_bytes(path)
    x, y = _npz_arrays(data, path, source.x, source.y)
    if len(x) != len(y):
        raise DataError(f"{path}: {source.x!r} has {len(x)} samples but {source.y!r} has {len(y)}")
    y, classes = _npz_target(y)
    return Arrays(_npz_inputs(x), y, classes=classes, files={source.path: _sha256(data)})


def _npz_arrays(data: bytes, path: Path, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(
                f"{path} is a single array, not an .npz archive", "save it with np.savez(path, x=..., y=...)"
            )
        with archive:
            if missing := [name for name in (x, y) if name not in archive.files]:
                raise DataError(
                    f"{path} has no array {' or '.join(map(repr, missing))}; its arrays: {', '.join(archive.files)}",
                    "name them with npz(path, x=..., y=...)",
                )
            return archive[x], archive[y]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # ValueError: object arrays need pickle
        raise DataError(f"cannot read {path} as an .npz archive of plain arrays: {e}") from e


def _npz_inputs(x: np.ndarray) -> np.ndarray:
    if x.dtype.kind in "fb":
        return x.astype(np.float32)
    return x if x.dtype == np.uint8 else x.astype(np.int64)  # uint8: images; other ints: token ids


def _npz_target(y: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    if y.dtype.kind in "iub" and y.ndim == 1:
        labels = y.astype(np.int64)
        ok = labels.size and labels.min() >= 0
        return labels, [str(i) for i in range(int(labels.max()) + 1)] if ok else None
    if y.dtype.kind == "f":
        y = y.astype(np.float32)
        return (y[:, None] if y.ndim == 1 else y), None
    return y, None


# --- text -----------------------------------------------------------------------------------


def _load_text(source: Text, ctx: Context) -> Arrays:
    path = _find(source.path, ctx, "text file")
    data = _read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (bad byte at offset {e.start})", "save it as UTF-8") from e
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # one code point per character
    alphabet, ids = np.unique(codes, return_inverse=True)  # sorted, so the vocab is sorted(set(text))
    width = source.seq_len + 1
    n = len(ids) // width
    if n == 0:
        raise DataError(
            f"{path} has {len(ids)} characters, fewer than one sample of seq_len + 1 = {width}",
            "use a smaller seq_len or a longer text",
        )
    windows = ids[: n * width].reshape(n, width).astype(np.int64)  # non-overlapping
    x, y = np.ascontiguousarray(windows[:, :-1]), np.ascontiguousarray(windows[:, 1:])
    return Arrays(x, y, files={source.path: _sha256(data)}, vocab=[chr(c) for c in alphabet])


# --- arithmetic ---------------------------------------------------------------------------


def addition_pairs(samples: int, low: float, high: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """[a, b] uniform in [low, high) as float32, and a + b as [samples, 1]."""
    x = np.random.default_rng(seed).uniform(low, high, (samples, 2)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True, dtype=np.float32)


def _load_arithmetic(source: Arithmetic, ctx: Context) -> Arrays:
    if source.high <= source.low:
        raise DataError(f"arithmetic needs high > low, got low={source.low}, high={source.high}")
    x, y = addition_pairs(source.samples, source.low, source.high, ctx.seed)
    # another seed, so the test pairs are not the training pairs
    x_test, y_test = addition_pairs(max(1, source.samples // 5), source.low, source.high, ctx.seed + 1)
    return Arrays(x, y, x_test, y_test)


# --- image folders ------------------------------------------------------------------------

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


class ImageFolderIndex(NamedTuple):
    """The images of a folder with one sub-folder per class, without decoding any."""

    files: list[Path]
    labels: list[int]
    classes: list[str]


def scan_image_folder(path: Path) -> ImageFolderIndex:
    """Classes are the sorted sub-folder names; images are found at any depth below them."""
    if not path.is_dir():
        raise DataError(f"{path} is not a folder", "image_folder expects a folder with one sub-folder per class")
    class_dirs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{path} has no sub-folders", f"put each class's images in its own folder: {path}/cat/1.png")
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        images = sorted(f for f in folder.rglob("*") if _is_image(f, folder))
        if not images:
            raise DataError(f"class folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        files += images
        labels += [label] * len(images)
    return ImageFolderIndex(files, labels, [d.name for d in class_dirs])


def _is_image(f: Path, top: Path) -> bool:
    hidden = any(part.startswith(".") for part in f.relative_to(top).parts)
    return f.suffix.lower() in IMAGE_SUFFIXES and not hidden and f.is_file()


def read_image(path: Path, size: int | tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 [channels, h, w], resized (bilinear) to size or (h, w)."""
    return _decode(_read_bytes(path), path, size, channels)


def _decode(data: bytes, path: Path, size: int | tuple[int, int], channels: int) -> np.ndarray:
    if channels not in (1, 3):
        raise DataError(f"images have 1 or 3 channels, not {channels}")
    image_module = _pillow()
    h, w = (size, size) if isinstance(size, int) else size
    try:
        with image_module.open(io.BytesIO(data)) as im:
            im.draft("L" if channels == 1 else "RGB", (w, h))  # lets JPEG decode at reduced size
            out = im.convert("L" if channels == 1 else "RGB").resize((w, h), image_module.Resampling.BILINEAR)
    except (OSError, ValueError, image_module.DecompressionBombError) as e:
        raise DataError(f"{path} is not a readable image: {e}") from e
    a = np.asarray(out, dtype=np.uint8)
    return a[None].copy() if channels == 1 else a.transpose(2, 0, 1).copy()


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as e:
        raise DataError("reading images needs Pillow, which is not installed", "pip install pillow") from e
    return Image


def _load_image_folder(source: ImageFolder, ctx: Context) -> Arrays:
    """Streamed: only the index is read here; images are decoded batch by batch while training."""
    folder = _find(source.path, ctx, "image folder")
    index = scan_image_folder(folder)
    h, w = (source.size, source.size) if isinstance(source.size, int) else source.size
    images = ImageFiles(index.files, (h, w), source.channels)
    files = {source.path.rstrip("/") + "/": folder_digest(folder, index.files)}
    return Arrays(images, np.array(index.labels, dtype=np.int64), classes=index.classes, files=files)


def folder_digest(folder: Path, files: list[Path]) -> str:
    """sha256 of a folder's file list (relative names and sizes): hashing every byte would read
    a folder too large for memory one more time before training starts."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


LOADERS: dict[str, Callable[[Any, Context], Arrays]] = {
    "mnist": _load_idx_source,
    "fashion_mnist": _load_idx_source,
    "cifar10": _load_cifar10,
    "csv": _load_csv,
    "npz": _load_npz,
    "text": _load_text,
    "arithmetic": _load_arithmetic,
    "image_folder": _load_image_folder,
}
