"""Dataset sources -> numpy arrays for `netspec run`.

Each source class of netspec.registry.sources knows its own loader (`Source.load`); this module
is the entry point that calls it, and the one place the rest of netspec imports data names from.
The loaders live in data_core (shared pieces), data_standard (MNIST, Fashion-MNIST, CIFAR-10)
and data_files (CSV, npz, text, image folders, arithmetic). Local files come first; missing
standard datasets are downloaded with checksums; every failure is a DataError that names the
file and says where it belongs. Only numpy and the standard library are imported, so the
torch-free commands and tests stay torch-free; Pillow is imported on the first decoded image.
"""

from __future__ import annotations

from pathlib import Path

from netspec.registry.sources import SOURCES, Source
from netspec.runtime.data_core import (
    IMAGE_SUFFIXES,
    ROOT_HELP,
    Arrays,
    DataError,
    DataPaths,
    ImageFiles,
    ImageFolderIndex,
    download,
    extract_tar,
    read_image,
    resolve_root,
    scan_image_folder,
    sha256_file,
)
from netspec.runtime.data_standard import IDX_FILES, IDX_SETS, load_idx, parse_idx
from netspec.verbatim.readers import folder_digest


def load(source: Source, root: Path, spec_dir: Path | None, seed: int, download: bool = True) -> Arrays:
    """The arrays of `source`, read from files under `root` (or next to the spec) or generated."""
    loader = getattr(source, "load", None)
    if not callable(loader):
        kind = getattr(source, "kind", None)
        raise DataError(f"netspec cannot load the source `{kind}`", f"sources it loads: {', '.join(SOURCES.names())}")
    arrays: Arrays = loader(DataPaths(Path(root), spec_dir, seed, download))
    return arrays


__all__ = [
    "IDX_FILES",
    "IDX_SETS",
    "IMAGE_SUFFIXES",
    "ROOT_HELP",
    "Arrays",
    "DataError",
    "DataPaths",
    "ImageFiles",
    "ImageFolderIndex",
    "download",
    "extract_tar",
    "folder_digest",
    "load",
    "load_idx",
    "parse_idx",
    "read_image",
    "resolve_root",
    "scan_image_folder",
    "sha256_file",
]
