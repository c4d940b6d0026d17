"""What every data source shares at run time: the loaded arrays, the errors, the paths a loader
may look under, reading files, checksums, downloads and images.

Only numpy and the standard library are imported here (Pillow on the first decoded image), so
the torch-free commands and tests stay torch-free.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, NamedTuple

import numpy as np

from netspec.registry.sources import IMAGE_SUFFIXES
from netspec.verbatim.readers import decode_image, image_index

ROOT_HELP = "point netspec at a data root with --data-dir DIR or NETSPEC_DATA=DIR"
MAX_DATA = 4 << 30  # bytes read from one data file, unless NETSPEC_MAX_DATA says otherwise
UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class DataError(Exception):
    """A dataset that cannot be loaded: `message` says what and which file, `hint` what to do.
    `exit_code` 1: reported at the spec's `source`; 2: a data or usage error, the file named."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class InputError(DataError):
    """A file given on the command line (weights, inputs) that cannot be used: a usage error,
    reported with the file's name rather than at the spec's `source`."""

    exit_code = 2


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
class DataPaths:
    """Where a loader looks for files, the seed of generated data, and whether it may download."""

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


# --- files, checksums and downloads ---------------------------------------------------


def sha256_file(path: Path) -> str:
    return file_digest(path, hashlib.sha256())


def file_digest(path: Path, h: Any) -> str:
    with open(path, "rb") as f:  # in chunks: archives can be far larger than memory allows
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return str(h.hexdigest())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def max_data() -> int:
    """The most bytes netspec reads from one data file: $NETSPEC_MAX_DATA (e.g. 8GiB), else 4 GiB."""
    text = os.environ.get("NETSPEC_MAX_DATA", "").strip()
    if not text:
        return MAX_DATA
    number, unit = text.upper().rstrip("B").rstrip("I"), ""
    if number[-1:] in UNITS:
        number, unit = number[:-1], number[-1]
    try:
        return max(1, int(float(number) * UNITS[unit]))
    except ValueError:
        raise DataError(f"NETSPEC_MAX_DATA={text!r} is not a size", "write e.g. NETSPEC_MAX_DATA=8GiB") from None


def regular_file(path: Path, error: type[DataError] = DataError) -> int:
    """The size of a regular file; a FIFO, a device or a folder is refused (reading one may never end)."""
    try:
        info = os.stat(path)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from e
    if not stat.S_ISREG(info.st_mode):
        kind = "folder" if stat.S_ISDIR(info.st_mode) else "device, pipe or socket"
        raise error(f"{path} is a {kind}, not a regular file", "give netspec the path of a file")
    return info.st_size


def read_bytes(path: Path, limit: int | None = None, error: type[DataError] = DataError) -> bytes:
    """A regular file's bytes, at most `limit` (default: max_data()) of them."""
    limit = max_data() if limit is None else limit
    if regular_file(path, error) > limit:
        raise error(*_too_big(path, limit))
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise error(f"cannot read {path}: {e.strerror or e}") from e
    if len(data) > limit:  # it grew while being read
        raise error(*_too_big(path, limit))
    return data


def _too_big(path: Path, limit: int) -> tuple[str, str]:
    return (
        f"{path} is larger than netspec reads from one data file ({limit:,} bytes)",
        "raise the limit with NETSPEC_MAX_DATA=SIZE (e.g. 16GiB) if the file is right",
    )


def gunzip(data: bytes, path: Path) -> bytes:
    """Decompressed, at most max_data() bytes: a small archive may expand without end."""
    limit = max_data()
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            out = f.read(limit + 1)
    except (OSError, EOFError, zlib.error) as e:  # bad header, bad CRC, stream cut short
        raise DataError(f"{path} is not a valid gzip file ({e})", "delete it to download it again") from e
    if len(out) > limit:
        raise DataError(*_too_big(path, limit))
    return out


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


def missing_files(folder: Path, names: list[str]) -> list[str]:
    return [n for n in names if not (folder / n).is_file()]


def missing_error(title: str, folder: Path, names: list[str], origin: str, reason: str | None) -> DataError:
    why = f"; downloading failed: {reason}" if reason else " (downloading is turned off)"
    return DataError(
        f"{title} files missing from {folder}: {', '.join(names)}{why}",
        f"put {'it' if len(names) == 1 else 'them'} in {folder} ({origin}), "
        f"or {ROOT_HELP} (a root with a {folder.name}/ folder)",
    )


def find_path(path: str, paths: DataPaths, what: str) -> Path:
    """A path from the spec: absolute as written, else next to the spec, else under the data root."""
    p = Path(path).expanduser()
    candidates = [p] if p.is_absolute() else [base / p for base in (paths.spec_dir, paths.root) if base is not None]
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataError(
        f"{what} {path!r} not found: looked for {' and '.join(map(str, candidates))}",
        f"paths are relative to the spec's folder, then to the data root {paths.root}; {ROOT_HELP}",
    )


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
        write_atomic(dest.joinpath(*parts), stream)


def write_atomic(dest: Path, stream: IO[bytes]) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(stream, out)
        os.replace(name, dest)
    finally:
        Path(name).unlink(missing_ok=True)


# --- image folders ------------------------------------------------------------------------


class ImageFolderIndex(NamedTuple):
    """The images of a folder with one sub-folder per class, without decoding any."""

    files: list[Path]
    labels: list[int]
    classes: list[str]


def scan_image_folder(path: Path) -> ImageFolderIndex:
    """Classes are the sorted sub-folder names; images are found at any depth below them."""
    if not path.is_dir():
        raise DataError(f"{path} is not a folder", "image_folder expects a folder with one sub-folder per class")
    try:
        return ImageFolderIndex(*image_index(path, IMAGE_SUFFIXES))
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        kinds = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DataError(str(e), f"put each class's images ({kinds}) in its own folder: {path}/cat/1.png") from None


def read_image(path: Path, size: int | tuple[int, int], channels: int) -> np.ndarray:
    """One image file as uint8 [channels, h, w], resized (bilinear) to size or (h, w)."""
    return _decode(read_bytes(path), path, size, channels)


def _decode(data: bytes, path: Path, size: int | tuple[int, int], channels: int) -> np.ndarray:
    if channels not in (1, 3):
        raise DataError(f"images have 1 or 3 channels, not {channels}")
    image_module = pillow()
    try:
        return decode_image(data, (size, size) if isinstance(size, int) else size, channels, image_module)
    except (OSError, ValueError, image_module.DecompressionBombError) as e:
        raise DataError(f"{path} is not a readable image: {e}") from e


def pillow() -> Any:
    try:
        from PIL import Image
    except ImportError as e:
        raise DataError("reading images needs Pillow, which is not installed", "pip install pillow") from e
    return Image
