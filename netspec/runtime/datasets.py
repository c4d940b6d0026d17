"""Dataset sources -> numpy arrays for `netspec run`.

Each source class of netspec.registry.sources names its loader (`Source.loader`), a function of
data_standard (MNIST, Fashion-MNIST, CIFAR-10) or data_files (CSV, npz, text, image folders,
arithmetic), which share data_core; this module is the entry point that calls it, and the one
place the rest of netspec imports data names from. Local files come first; missing standard
datasets are downloaded with checksums; every failure is a DataError that names the file and
says where it belongs. Only numpy and the standard library are imported, so the torch-free
commands and tests stay torch-free; Pillow is imported on the first decoded image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from netspec.registry.sources import SOURCES, Source
from netspec.runtime import data_files, data_standard
from netspec.runtime.data_core import (
    IMAGE_SUFFIXES,
    ROOT_HELP,
    Arrays,
    DataError,
    DataPaths,
    ImageFiles,
    ImageFolderIndex,
    InputError,
    download,
    extract_tar,
    read_image,
    resolve_root,
    scan_image_folder,
    sha256_file,
)
from netspec.runtime.data_fit import DataMismatch, check_fit
from netspec.runtime.data_standard import IDX_FILES, IDX_SETS, load_idx, parse_idx
from netspec.verbatim.readers import folder_digest


def load(source: Source, root: Path, spec_dir: Path | None, seed: int, download: bool = True) -> Arrays:
    """The arrays of `source`, read from files under `root` (or next to the spec) or generated."""
    loader = loader_of(source)
    if loader is None:
        kind = getattr(source, "kind", None)
        raise DataError(f"netspec cannot load the source `{kind}`", f"sources it loads: {', '.join(SOURCES.names())}")
    arrays: Arrays = loader(source, DataPaths(Path(root), spec_dir, seed, download))
    return arrays


def loader_of(source: Source | type[Source]) -> Callable[[Any, DataPaths], Arrays] | None:
    """The function a source class names as its `loader`, from the data modules."""
    name = getattr(source, "loader", "")
    found = (getattr(module, name, None) for module in (data_standard, data_files) if name)
    return next((f for f in found if callable(f)), None)


__all__ = [
    "IDX_FILES",
    "IDX_SETS",
    "IMAGE_SUFFIXES",
    "ROOT_HELP",
    "Arrays",
    "DataError",
    "DataMismatch",
    "DataPaths",
    "ImageFiles",
    "ImageFolderIndex",
    "InputError",
    "check_fit",
    "download",
    "extract_tar",
    "folder_digest",
    "load",
    "load_idx",
    "loader_of",
    "parse_idx",
    "read_image",
    "resolve_root",
    "scan_image_folder",
    "sha256_file",
]
