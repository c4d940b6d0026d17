"""Sources read from a file the spec names (CSV, NumPy archives, text, image folders, .ts time
series) and generated ones (arithmetic), at run time."""

from __future__ import annotations

import csv
import difflib
import io
import zipfile
from pathlib import Path

import numpy as np

from netspec.registry.sources import Arithmetic, Csv, ImageFolder, Npz, Text, Ts
from netspec.runtime.data_core import (
    Arrays,
    DataError,
    DataPaths,
    ImageFiles,
    find_path,
    gunzip,
    pillow,
    read_bytes,
    regular_file,
    scan_image_folder,
    sha256_bytes,
)
from netspec.verbatim.readers import (
    addition_pairs,
    char_windows,
    csv_rows,
    csv_target,
    folder_digest,
    is_number,
    npz_inputs,
    npz_targets,
    ts_series,
    ts_stack,
)

# --- CSV --------------------------------------------------------------------------------


def load_csv(source: Csv, paths: DataPaths) -> Arrays:
    """A CSV file with a header row: every column but `target` is a numeric feature."""
    name, target, task_type, delimiter = source.path, source.target, source.task_type, source.delimiter
    path = find_path(name, paths, "csv file")
    data = read_bytes(path)
    header, rows, lines = _csv_rows(gunzip(data, path) if path.suffix == ".gz" else data, path, delimiter)
    t = _target_index(header, target, path)
    cols = [i for i in range(len(header)) if i != t]
    if not cols:
        raise DataError(f"{path} has no feature columns besides the target {target!r}")
    x = _numeric(rows, cols, header, lines, path)
    y, classes = _csv_target([r[t].strip() for r in rows], task_type, path, header[t], lines)
    return Arrays(x, y, classes=classes, files={name: sha256_bytes(data)})


def _csv_rows(data: bytes, path: Path, delimiter: str) -> tuple[list[str], list[list[str]], list[int]]:
    """Header, data rows (blank ones skipped) and each row's line number, for error messages."""
    try:
        return csv_rows(data.decode("utf-8-sig"), delimiter)
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from e
    except (csv.Error, TypeError) as e:  # TypeError: a delimiter that is not one character
        raise DataError(f"{path} cannot be read as CSV with delimiter {delimiter!r}: {e}") from e
    except ValueError as e:  # too few rows, or a row of another length
        raise DataError(f"{path}: {e}") from None


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


def _csv_target(
    values: list[str], task_type: str, path: Path, column: str, lines: list[int]
) -> tuple[np.ndarray, list[str] | None]:
    """Class labels 0..k-1 (sorted names) for text, integer (auto) or classification targets,
    else float32 values [N, 1]."""
    if task_type == "regression":
        for line, value in zip(lines, values):
            if not is_number(value):
                raise DataError(f"{path}, line {line}: regression target {column!r} is {value!r}, not a number")
    return csv_target(values, task_type)


# --- NumPy archives -----------------------------------------------------------------------


def load_npz(source: Npz, paths: DataPaths) -> Arrays:
    """The arrays `x` (inputs) and `y` (targets) of an .npz archive."""
    name, x_name, y_name = source.path, source.x, source.y
    path = find_path(name, paths, "npz file")
    data = read_bytes(path)
    x, y = _npz_arrays(data, path, x_name, y_name)
    if len(x) != len(y):
        raise DataError(f"{path}: {x_name!r} has {len(x)} samples but {y_name!r} has {len(y)}")
    y, classes = _npz_target(y)
    return Arrays(npz_inputs(x), y, classes=classes, files={name: sha256_bytes(data)})


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


def _npz_target(y: np.ndarray) -> tuple[np.ndarray, list[str] | None]:
    """The targets, and class names 0..k-1 for labels that are non-negative integers."""
    y = npz_targets(y)
    labels = y.dtype == np.int64 and y.ndim == 1 and y.size and y.min() >= 0
    return y, [str(i) for i in range(int(y.max()) + 1)] if labels else None


# --- text -----------------------------------------------------------------------------------


def load_text(source: Text, paths: DataPaths) -> Arrays:
    """Training windows at every offset of the first part of the text and non-overlapping held-out
    windows of its last part (ids into the sorted alphabet), shifted by one as targets."""
    name, seq_len = source.path, source.seq_len
    path = find_path(name, paths, "text file")
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (bad byte at offset {e.start})", "save it as UTF-8") from e
    try:
        x, y, x_test, y_test, alphabet = char_windows(text, seq_len, source.held_out)
    except ValueError as e:
        raise DataError(f"{path} has {e}", "use a smaller seq_len or a longer text") from None
    return Arrays(x, y, x_test, y_test, files={name: sha256_bytes(data)}, vocab=[chr(c) for c in alphabet])


# --- arithmetic ---------------------------------------------------------------------------


def load_arithmetic(source: Arithmetic, paths: DataPaths) -> Arrays:
    """Synthetic sums; the test split has a fifth as many, from the next seed."""
    samples, low, high = source.samples, source.low, source.high
    if high <= low:
        raise DataError(f"arithmetic needs high > low, got low={low}, high={high}")
    x, y = addition_pairs(samples, low, high, paths.seed)
    # another seed, so the test pairs are not the training pairs
    x_test, y_test = addition_pairs(max(1, samples // 5), low, high, paths.seed + 1)
    return Arrays(x, y, x_test, y_test)


def load_image_folder(source: ImageFolder, paths: DataPaths) -> Arrays:
    """Streamed: only the index is read here; images are decoded batch by batch while training."""
    name, (h, w), channels = source.path, source.hw(), source.channels
    folder = find_path(name, paths, "image folder")
    index = scan_image_folder(folder)
    verify_images(index.files)
    images = ImageFiles(index.files, (h, w), channels)
    files = {name.rstrip("/") + "/": folder_digest(folder, index.files)}
    return Arrays(images, np.array(index.labels, dtype=np.int64), classes=index.classes, files=files)


def verify_images(files: list[Path]) -> None:
    """Each file opens and its header decodes (Pillow's verify(), which decodes no pixels), so a
    bad file is named before training rather than met in a batch epochs later."""
    image_module = pillow()
    for path in files:
        try:
            regular_file(path)
            with image_module.open(path) as im:
                im.verify()
        except DataError:
            raise
        except Exception as e:  # Pillow raises many kinds (OSError, SyntaxError, struct.error, ...)
            raise DataError(
                f"{path} is not a readable image: {e}", "remove it from the folder, or replace it with a good copy"
            ) from None


# --- sktime .ts time series ---------------------------------------------------------------


def load_ts(source: Ts, paths: DataPaths) -> Arrays:
    """The _TRAIN.ts and _TEST.ts files: float32 [N, channels, length], zero-padded at the end
    to the longest series of both, and labels in the order of @classLabel."""
    read = [_ts_file(name, paths) for name in source.files()]
    (train, y, classes, _), (test, y_test, test_classes, _) = read
    if test_classes != classes:
        raise DataError(f"the test file's classes {test_classes} are not the training file's {classes}")
    dims = {s.shape[0] for s in train + test}
    if len(dims) > 1:
        raise DataError(f"the train and test series have different dimensions: {sorted(dims)}")
    length = max(s.shape[1] for s in train + test)
    for what, want, got in (("channels", source.channels, dims.pop()), ("length", source.length, length)):
        if want is not None and want != got:
            raise DataError(f"{source.path}: the series have {what} {got}, but the source says {want}")
    files = {name: digest for name, (*_, digest) in zip(source.files(), read)}
    return Arrays(ts_stack(train, length), y, ts_stack(test, length), y_test, classes=classes, files=files)


def _ts_file(name: str, paths: DataPaths) -> tuple[list[np.ndarray], np.ndarray, list[str], str]:
    path = find_path(name, paths, ".ts file")
    data = read_bytes(path)
    try:
        series, labels, classes = ts_series(data.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path} is not UTF-8 text (byte {e.start})", "save it as UTF-8") from e
    except ValueError as e:
        raise DataError(f"{path}, {e}" if str(e).startswith("line ") else f"{path}: {e}") from None
    return series, labels, classes, sha256_bytes(data)
