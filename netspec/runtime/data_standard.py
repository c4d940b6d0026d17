"""The standard datasets at run time: MNIST and Fashion-MNIST (IDX files) and CIFAR-10 (binary
batches), read from the data root, downloaded with checksums when missing."""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from netspec.registry.sources import IDX_FILES, Checksum, Cifar10, FashionMnist, Mnist
from netspec.runtime.data_core import (
    Arrays,
    DataError,
    DataPaths,
    download,
    extract_tar,
    file_digest,
    gunzip,
    missing_error,
    missing_files,
    read_bytes,
    sha256_bytes,
)
from netspec.verbatim.readers import cifar_records

# --- MNIST and Fashion-MNIST: IDX files ------------------------------------------------


# The facts live on the registry classes; these tables are their runtime view (tests patch them).
CHECKSUMS: dict[str, Checksum] = {
    f"{cls.folder}/{name}": digests for cls in (Mnist, FashionMnist) for name, digests in cls.checksums.items()
}


@dataclass(frozen=True)
class IdxSet:
    """One IDX dataset: its folder under the data root, where to fetch it, its class names."""

    title: str
    folder: str
    mirrors: tuple[str, ...]  # base URLs, tried in order
    classes: tuple[str, ...]


IDX_SETS: dict[str, IdxSet] = {
    cls.kind_name(): IdxSet(cls.title, cls.folder, cls.mirrors, cls.classes) for cls in (Mnist, FashionMnist)
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
    if missing := missing_files(folder, names):
        reason = _fetch_idx(spec, folder, missing, verify) if download else None
        if still := missing_files(folder, names):
            raise missing_error(spec.title, folder, still, f"from {spec.mirrors[0]}", reason)
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
    data = read_bytes(path)
    digest = files[key] = sha256_bytes(data)
    want = CHECKSUMS.get(key)
    if verify and want and digest != want.sha256:
        raise DataError(
            f"{path} has sha256 {digest}, not the published {want.sha256}: it is corrupt, truncated or another file",
            f"delete it to download it again, or replace it with the original from {spec.mirrors[0]}",
        )
    return parse_idx(gunzip(data, path), ndim, str(path))


def load_idx_source(source: Mnist | FashionMnist, paths: DataPaths) -> Arrays:
    """An IDX source's files under the data root, downloaded when missing and allowed."""
    return load_idx(IDX_SETS[source.kind_name()], paths.root, paths.download)


# --- CIFAR-10: the binary version --------------------------------------------------------

CIFAR_URL = Cifar10.url
CIFAR_MD5 = Cifar10.md5
CIFAR_ARCHIVE = Cifar10.archive
CIFAR_FOLDER = Cifar10.folder
CIFAR_TRAIN = list(Cifar10.train_files)
CIFAR_TEST = Cifar10.test_file
CIFAR_CLASSES = list(Cifar10.classes)
CIFAR_RECORD = 1 + 3 * 32 * 32  # a label byte, then the R, G and B planes


def load_cifar10(source: Cifar10, paths: DataPaths) -> Arrays:
    """CIFAR-10's five training batches and its test batch, extracted from the archive when missing."""
    folder = paths.root / CIFAR_FOLDER
    names = [*CIFAR_TRAIN, CIFAR_TEST]
    if missing_files(folder, names):
        reason = _fetch_cifar(paths.root, paths.download)
        if still := missing_files(folder, names):
            raise missing_error("CIFAR-10", folder, still, f"extracted from {CIFAR_URL}", reason)
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
    elif (md5 := file_digest(archive, hashlib.md5(usedforsecurity=False))) != CIFAR_MD5:
        raise DataError(f"{archive} has md5 {md5}, not the published {CIFAR_MD5}", "delete it to download it again")
    extract_tar(archive, root, CIFAR_FOLDER)
    return None


def _read_cifar(path: Path, files: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
    data = read_bytes(path)
    files[f"{CIFAR_FOLDER}/{path.name}"] = sha256_bytes(data)
    if not data or len(data) % CIFAR_RECORD:
        raise DataError(
            f"{path} is {len(data)} bytes, not a whole number of {CIFAR_RECORD}-byte records "
            "(1 label byte + 3×32×32 pixels): the file is truncated or corrupt",
            f"delete {path.parent} to download it again",
        )
    images, labels = cifar_records(data)
    if labels.max() >= len(CIFAR_CLASSES):
        raise DataError(f"{path} has label {labels.max()}: not the CIFAR-10 binary version (CIFAR-100?)")
    return images, labels


def _cifar_classes(folder: Path) -> list[str]:
    meta = folder / "batches.meta.txt"
    names = (
        [line.strip() for line in meta.read_text(errors="replace").splitlines() if line.strip()]
        if meta.is_file()
        else []
    )
    return names if len(names) == len(CIFAR_CLASSES) else list(CIFAR_CLASSES)
