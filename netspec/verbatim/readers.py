"""Readers of data sources shared by `netspec run` and the scripts `netspec emit` writes:
the arrays a source's bytes hold, so that both backends read them the same way.

Only numpy and the standard library are imported (the caller passes Pillow in), so
that `netspec run`'s data loading stays torch-free; the emitter copies the functions a
source needs verbatim into scripts (see netspec/verbatim/data.py for the rules). Errors
are plain exceptions: each backend words them its own way.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from pathlib import Path
from typing import Any

import numpy as np


def addition_pairs(
    samples: int,
    low: float,
    high: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """[a, b] uniform in [low, high) as float32, and a + b as [samples, 1]."""
    x = np.random.default_rng(seed).uniform(low, high, (samples, 2)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True, dtype=np.float32)


def cifar_records(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 binary records (a label byte, then the red, green and blue planes):
    uint8 images [N, 3, 32, 32] and int64 labels."""
    records = np.frombuffer(data, np.uint8).reshape(-1, 1 + 3 * 32 * 32)
    return records[:, 1:].reshape(-1, 3, 32, 32).copy(), records[:, 0].astype(np.int64)


def csv_rows(
    text: str,
    delimiter: str,
) -> tuple[list[str], list[list[str]], list[int]]:
    """A CSV text's header (names stripped), its data rows (blank ones skipped) and each
    row's line number; ValueError without a data row or for a row of another length."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    numbered = [(reader.line_num, r) for r in reader if any(c.strip() for c in r)]
    if len(numbered) < 2:
        raise ValueError("needs a header row and at least one data row")
    header = [name.strip() for name in numbered[0][1]]
    for line, row in numbered[1:]:
        if len(row) != len(header):
            n = len(header)
            raise ValueError(f"line {line}: {len(row)} fields, but the header has {n}")
    return header, [row for _, row in numbered[1:]], [line for line, _ in numbered[1:]]


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_target(
    values: list[str],
    task_type: str,
) -> tuple[np.ndarray, list[str] | None]:
    """A target column as int64 class indices (into its sorted distinct values) and
    the class names, for "classification", or "auto" with integers or text; else as
    float32 values [N, 1] (ValueError for one that is not a number) and None."""
    integers = all(re.fullmatch(r"[+-]?\d+", v) for v in values)
    numbers = not integers and all(is_number(v) for v in values)
    if task_type == "regression" or (task_type == "auto" and numbers):
        return np.array(values, dtype=np.float32)[:, None], None
    keys: list = [int(v) for v in values] if integers else values
    names = sorted(set(keys))
    index = {name: i for i, name in enumerate(names)}
    return np.array([index[k] for k in keys], dtype=np.int64), [str(n) for n in names]


def npz_inputs(x: np.ndarray) -> np.ndarray:
    """Inputs as float32; uint8 images and integer token ids as they are."""
    if x.dtype.kind in "fb":
        return x.astype(np.float32)
    return x if x.dtype == np.uint8 else x.astype(np.int64)


def npz_targets(y: np.ndarray) -> np.ndarray:
    """Targets as int64 labels (integers, one per sample) or float32 values [N, k]."""
    if y.dtype.kind in "iub" and y.ndim == 1:
        return y.astype(np.int64)
    if y.dtype.kind == "f":
        y = y.astype(np.float32)
        return y[:, None] if y.ndim == 1 else y
    return y


def char_windows(
    text: str,
    seq_len: int,
    held_out: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A text as character ids (int64 indices into its sorted characters), split as
    nanoGPT splits it: training windows of seq_len at every offset of the first
    1 - held_out of the text (views, not copies: a batch of random offsets is a batch
    of random rows), and non-overlapping windows of the rest, held out whole; the
    targets are the same windows shifted by one. Returns x, y, x_test, y_test and the
    sorted characters' code points; ValueError when a part is shorter than one window."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")  # a code point each
    alphabet, ids = np.unique(codes, return_inverse=True)
    ids = ids.astype(np.int64).reshape(-1)
    cut = int(len(ids) * (1 - held_out))
    train, test = ids[:cut], ids[cut:]
    n = (len(test) - 1) // seq_len  # held-out windows
    if len(train) <= seq_len or n == 0:
        few = f"{len(ids)} characters, too few for a window of seq_len + 1 = {seq_len + 1}"
        raise ValueError(f"{few} in each part (held_out={held_out})")
    windows = np.lib.stride_tricks.sliding_window_view(train, seq_len, writeable=True)
    x_test = test[: n * seq_len].reshape(n, seq_len)
    y_test = test[1 : n * seq_len + 1].reshape(n, seq_len)
    return windows[:-1], windows[1:], x_test, y_test, alphabet


def decode_image(
    data: bytes,
    size: tuple[int, int],
    channels: int,
    pillow: Any,
) -> np.ndarray:
    """An image file's bytes as uint8 [channels, h, w], resized (bilinear) to size;
    `pillow` is PIL.Image, which the caller imports (only image folders need it)."""
    h, w = size
    mode = "L" if channels == 1 else "RGB"
    with pillow.open(io.BytesIO(data)) as im:
        im.draft(mode, (w, h))  # lets JPEG decode at a reduced size
        out = im.convert(mode).resize((w, h), pillow.Resampling.BILINEAR)
    a = np.asarray(out, dtype=np.uint8)
    return a[None].copy() if channels == 1 else a.transpose(2, 0, 1).copy()


def image_index(
    folder: Path,
    suffixes: frozenset[str] | tuple[str, ...],
) -> tuple[list[Path], list[int], list[str]]:
    """The images of a folder with one sub-folder per class: the files (at any depth,
    hidden ones skipped), their labels (indices into the sorted class names) and the
    class names; ValueError for a folder without classes or a class without images."""
    dirs = [p for p in folder.iterdir() if p.is_dir()]
    classes = sorted(p for p in dirs if not p.name.startswith("."))
    if not classes:
        raise ValueError(f"{folder} has no sub-folders")
    files: list[Path] = []
    labels: list[int] = []
    for label, top in enumerate(classes):
        found = []
        for f in sorted(top.rglob("*")):
            hidden = any(p.startswith(".") for p in f.relative_to(top).parts)
            if f.suffix.lower() in suffixes and f.is_file() and not hidden:
                found.append(f)
        if not found:
            raise ValueError(f"class folder {top} has no images")
        files += found
        labels += [label] * len(found)
    return files, labels, [c.name for c in classes]


def folder_digest(folder: Path, files: list[Path]) -> str:
    """sha256 of a folder's file list (relative names and sizes): hashing every byte
    would read a folder too large for memory one more time before training starts."""
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\t{f.stat().st_size}\n".encode())
    return h.hexdigest()


def ts_series(
    text: str,
) -> tuple[list[np.ndarray], np.ndarray, list[str]]:
    """An sktime .ts file's series, as float32 [dimensions, length] each (lengths may
    differ), their int64 labels (indices into the classes in the order @classLabel
    lists them) and the class names; ValueError naming the line of a bad one."""
    header: dict[str, object] = {}
    series: list[np.ndarray] = []
    labels: list[int] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "data" not in header:
            _ts_header(line, n, header)
            continue
        rows, label = _ts_row(line, n, header)
        series.append(rows)
        labels.append(label)
    classes = header.get("classes")
    if not series or not isinstance(classes, list):
        raise ValueError("no series: it needs a @classLabel line, @data and rows")
    return series, np.array(labels, dtype=np.int64), classes


def _ts_header(line: str, n: int, header: dict[str, object]) -> None:
    """One line before @data: the classes, the dimensions, or @data itself."""
    words = line.split()
    key, rest = words[0].lower(), words[1:]
    if key == "@classlabel":
        if not rest or rest[0].lower() != "true" or len(rest) < 2:
            raise ValueError(f"line {n}: @classLabel lists no classes")
        header["classes"] = rest[1:]
    elif key == "@timestamps" and rest and rest[0].lower() == "true":
        raise ValueError(f"line {n}: series with time stamps are not supported")
    elif key == "@dimensions" and rest:
        header["dims"] = int(rest[0]) if rest[0].isdigit() else None
    elif key == "@data":
        if "classes" not in header:
            raise ValueError(f"line {n}: @data before a @classLabel line")
        header["data"] = True
    elif not key.startswith("@"):
        raise ValueError(f"line {n}: {line[:40]!r} before @data")


def _ts_row(line: str, n: int, header: dict[str, object]) -> tuple[np.ndarray, int]:
    """One series: its dimensions, split by colons, and the class label last."""
    classes = header["classes"]
    assert isinstance(classes, list)
    *parts, label = line.split(":")
    if not parts:
        raise ValueError(f"line {n}: no class label after the values")
    dims = header.get("dims")
    if dims is not None and len(parts) != dims:
        raise ValueError(f"line {n}: {len(parts)} dimensions, not {dims}")
    header["dims"] = len(parts)
    try:
        rows = [[float(v) for v in p.split(",")] for p in parts]
    except ValueError as e:
        raise ValueError(f"line {n}: {e}") from None
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"line {n}: dimensions of different lengths")
    if label.strip() not in classes:
        known = ", ".join(classes)
        raise ValueError(f"line {n}: class {label.strip()!r} is not one of {known}")
    return np.array(rows, dtype=np.float32), classes.index(label.strip())


def ts_stack(
    series: list[np.ndarray],
    length: int,
) -> np.ndarray:
    """Series [dimensions, length_i] as one float32 array [N, dimensions, length],
    each padded with zeros at the end."""
    out = np.zeros((len(series), series[0].shape[0], length), dtype=np.float32)
    for i, s in enumerate(series):
        out[i, :, : s.shape[1]] = s
    return out
