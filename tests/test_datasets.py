"""netspec.runtime.datasets and the loaders it calls (data_core, data_standard, data_files) on
small generated files (torch-free), and on the real data when NETSPEC_DATA is set."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import struct
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from netspec.registry.sources import Arithmetic, Cifar10, Csv, FashionMnist, ImageFolder, Mnist, Npz, Text, Ts
from netspec.runtime import data_standard as std
from netspec.runtime import datasets as ds
from netspec.runtime.datasets import Arrays, DataError, load

MNIST = ds.IDX_SETS["mnist"]


# --- helpers --------------------------------------------------------------------------


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes((0, 0, 0x08, a.ndim)) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def write_gz(path: Path, raw: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw))


def write_idx_set(folder: Path, n_train: int = 5, n_test: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": g.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": g.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": g.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": g.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, a in arrays.items():
        write_gz(folder / name, idx_bytes(a))
    return arrays


def trust(monkeypatch: pytest.MonkeyPatch, folder: Path, prefix: str = "mnist") -> None:
    """Make the checksum table accept the generated files in `folder`."""
    table = dict(std.CHECKSUMS)
    for f in folder.iterdir():
        data = f.read_bytes()
        table[f"{prefix}/{f.name}"] = std.Checksum(hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest())
    monkeypatch.setattr(std, "CHECKSUMS", table)


def cifar_records(labels: list[int], seed: int = 0) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    records = np.concatenate([np.array(labels, np.uint8)[:, None], pixels], axis=1)
    return records.tobytes(), pixels.reshape(-1, 3, 32, 32)


def write_cifar(folder: Path) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    pixels = {}
    for i, name in enumerate([*std.CIFAR_TRAIN, std.CIFAR_TEST]):
        data, pixels[name] = cifar_records([i % 10, (i + 3) % 10], seed=i)
        (folder / name).write_bytes(data)
    return pixels


def ctx_load(source: object, root: Path, spec_dir: Path | None = None, seed: int = 0, **kw: bool) -> Arrays:
    return load(source, root, spec_dir, seed, **kw)  # type: ignore[arg-type]


# --- root and dispatch --------------------------------------------------------------------


def test_resolve_root_prefers_argument_then_env_then_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETSPEC_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert ds.resolve_root(str(tmp_path / "arg")) == tmp_path / "arg"
    assert ds.resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv("NETSPEC_DATA")
    assert ds.resolve_root(None) == tmp_path / "xdg" / "netspec"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ds.resolve_root(None) == tmp_path / "home" / ".cache" / "netspec"


def test_unknown_source_kind_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot load the source `imagenet`"):
        ctx_load(SimpleNamespace(kind="imagenet"), tmp_path)


def test_every_registered_source_has_a_loader() -> None:
    from netspec.registry.sources import SOURCES

    assert all(ds.loader_of(cls) is not None for cls in SOURCES.entries.values())


def test_importing_datasets_does_not_import_torch() -> None:
    code = "import sys, netspec.runtime.datasets; assert 'torch' not in sys.modules and 'PIL' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- IDX ------------------------------------------------------------------------------------


def test_idx_round_trip(tmp_path: Path) -> None:
    arrays = write_idx_set(tmp_path / "mnist")
    a = ds.load_idx(MNIST, tmp_path, download=False, verify=False)
    assert a.x_train.shape == (5, 1, 28, 28) and a.x_train.dtype == np.uint8
    assert a.y_train.dtype == np.int64 and a.x_test is not None and a.x_test.shape == (3, 1, 28, 28)
    np.testing.assert_array_equal(a.x_train[:, 0], arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(a.y_test, arrays["t10k-labels-idx1-ubyte.gz"])
    assert a.classes == list("0123456789")
    assert set(a.files) == {f"mnist/{n}" for n in arrays}
    assert a.files["mnist/train-labels-idx1-ubyte.gz"] == ds.sha256_file(tmp_path / "mnist/train-labels-idx1-ubyte.gz")


def test_load_dispatches_idx_sources_through_the_checksum_table(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_idx_set(tmp_path / "fashion-mnist")
    trust(monkeypatch, tmp_path / "fashion-mnist", "fashion-mnist")
    a = ctx_load(FashionMnist(), tmp_path, download=False)
    assert a.x_train.shape == (5, 1, 28, 28) and a.classes is not None and a.classes[-1] == "Ankle boot"


def test_idx_checksum_mismatch_names_the_file(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    with pytest.raises(DataError) as e:
        ctx_load(Mnist(), tmp_path, download=False)
    assert "train-images-idx3-ubyte.gz has sha256" in e.value.message and "not the published" in e.value.message
    assert e.value.hint and "delete it" in e.value.hint


@pytest.mark.parametrize(
    "corrupt, match",
    [
        (lambda raw: raw[:-10], "truncated or corrupt"),
        (lambda raw: raw + b"\0", "truncated or corrupt"),
        (lambda raw: raw[:6], "truncated: 6 bytes"),
        (lambda raw: b"\0\0\x09" + raw[3:], "not an IDX file"),
        (lambda raw: raw[:3] + b"\x02" + raw[4:], "not an IDX file"),
        (lambda raw: b"", "truncated: 0 bytes"),
    ],
    ids=["short-payload", "extra-bytes", "short-header", "wrong-type", "wrong-ndim", "empty"],
)
def test_damaged_idx_files_never_half_load(tmp_path: Path, corrupt, match: str) -> None:
    arrays = write_idx_set(tmp_path / "mnist")
    name = "train-images-idx3-ubyte.gz"
    write_gz(tmp_path / "mnist" / name, corrupt(idx_bytes(arrays[name])))
    with pytest.raises(DataError, match=match) as e:
        ds.load_idx(MNIST, tmp_path, download=False, verify=False)
    assert name in e.value.message


@pytest.mark.parametrize("damage", [lambda gz: gz[: len(gz) // 2], lambda gz: gz[:20] + b"\xff" * 8 + gz[28:]])
def test_corrupt_gzip_is_a_data_error(tmp_path: Path, damage) -> None:
    write_idx_set(tmp_path / "mnist")
    path = tmp_path / "mnist" / "train-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataError, match="not a valid gzip file") as e:
        ds.load_idx(MNIST, tmp_path, download=False, verify=False)
    assert str(path) in e.value.message


def test_idx_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    write_gz(tmp_path / "mnist/t10k-labels-idx1-ubyte.gz", idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DataError, match=r"has 3 images but .*t10k-labels-idx1-ubyte\.gz 2 labels"):
        ds.load_idx(MNIST, tmp_path, download=False, verify=False)


def test_missing_idx_files_say_which_and_where(tmp_path: Path) -> None:
    write_idx_set(tmp_path / "mnist")
    (tmp_path / "mnist/t10k-images-idx3-ubyte.gz").unlink()
    (tmp_path / "mnist/train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as e:
        ctx_load(Mnist(), tmp_path, download=False)
    message, hint = e.value.message, e.value.hint or ""
    assert f"missing from {tmp_path / 'mnist'}: train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz" in message
    assert "train-images" not in message and "downloading is turned off" in message
    assert f"put them in {tmp_path / 'mnist'}" in hint and "--data-dir" in hint and "NETSPEC_DATA" in hint


# --- downloads ----------------------------------------------------------------------------


def test_download_from_file_url_checks_both_digests(tmp_path: Path) -> None:
    src = tmp_path / "server" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(b"netspec" * 1000)
    data = src.read_bytes()
    dest = tmp_path / "root" / "sub" / "blob.bin"
    sha, md5 = hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest()
    assert ds.download(src.as_uri(), dest, sha256=sha, md5=md5) == dest
    assert dest.read_bytes() == data and os.listdir(dest.parent) == ["blob.bin"]


@pytest.mark.parametrize("which", ["sha256", "md5"])
def test_download_checksum_mismatch_leaves_nothing_behind(tmp_path: Path, which: str) -> None:
    src = tmp_path / "blob.bin"
    src.write_bytes(b"not the published file")
    dest = tmp_path / "root" / "blob.bin"
    with pytest.raises(DataError, match=f"has {which} .*not {'0' * 8}.*it was not saved"):
        ds.download(src.as_uri(), dest, **{which: "0" * 64})  # type: ignore[arg-type]
    assert os.listdir(dest.parent) == []


def test_download_of_a_missing_url_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="could not download file://"):
        ds.download((tmp_path / "nowhere.gz").as_uri(), tmp_path / "out" / "x.gz")
    assert os.listdir(tmp_path / "out") == []


def test_missing_idx_files_are_fetched_from_the_first_working_mirror(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = tmp_path / "server"
    arrays = write_idx_set(server)
    trust(monkeypatch, server)
    mirrors = ((tmp_path / "dead").as_uri() + "/", server.as_uri() + "/")
    monkeypatch.setitem(ds.IDX_SETS, "mnist", dataclasses.replace(MNIST, mirrors=mirrors))
    root = tmp_path / "root"
    a = ctx_load(Mnist(), root)
    assert sorted(os.listdir(root / "mnist")) == sorted(arrays)
    np.testing.assert_array_equal(a.y_train, arrays["train-labels-idx1-ubyte.gz"])


def test_a_download_that_fails_its_checksum_is_reported_as_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = tmp_path / "server"
    write_idx_set(server)  # not in the checksum table: every download must be refused
    monkeypatch.setitem(ds.IDX_SETS, "mnist", dataclasses.replace(MNIST, mirrors=(server.as_uri() + "/",)))
    with pytest.raises(DataError) as e:
        ctx_load(Mnist(), tmp_path / "root")
    assert "MNIST files missing from" in e.value.message and "downloading failed" in e.value.message
    assert "it was not saved" in e.value.message
    assert not any((tmp_path / "root" / "mnist").iterdir())


# --- CIFAR-10 -------------------------------------------------------------------------------


def test_cifar10_binary_records(tmp_path: Path) -> None:
    pixels = write_cifar(tmp_path / std.CIFAR_FOLDER)
    a = ctx_load(Cifar10(), tmp_path, download=False)
    assert a.x_train.shape == (10, 3, 32, 32) and a.x_train.dtype == np.uint8
    assert a.y_train.tolist() == [0, 3, 1, 4, 2, 5, 3, 6, 4, 7] and a.y_train.dtype == np.int64
    assert a.y_test is not None and a.y_test.tolist() == [5, 8]
    np.testing.assert_array_equal(a.x_train[:2], pixels["data_batch_1.bin"])
    np.testing.assert_array_equal(a.x_test, pixels["test_batch.bin"])
    assert a.classes == std.CIFAR_CLASSES and len(a.files) == 6


def test_cifar10_red_plane_comes_first(tmp_path: Path) -> None:
    write_cifar(tmp_path / std.CIFAR_FOLDER)
    record = bytes([7]) + bytes([200] * 1024 + [100] * 1024 + [0] * 1024)
    (tmp_path / std.CIFAR_FOLDER / "test_batch.bin").write_bytes(record)
    a = ctx_load(Cifar10(), tmp_path, download=False)
    assert a.x_test is not None and a.x_test[0, :, 5, 5].tolist() == [200, 100, 0]


def test_cifar10_class_names_from_meta(tmp_path: Path) -> None:
    write_cifar(tmp_path / std.CIFAR_FOLDER)
    names = [f"c{i}" for i in range(10)]
    (tmp_path / std.CIFAR_FOLDER / "batches.meta.txt").write_text("\n".join(names) + "\n\n")
    assert ctx_load(Cifar10(), tmp_path, download=False).classes == names


def test_cifar10_wrong_size_file(tmp_path: Path) -> None:
    write_cifar(tmp_path / std.CIFAR_FOLDER)
    path = tmp_path / std.CIFAR_FOLDER / "data_batch_3.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"data_batch_3\.bin is 6145 bytes, not a whole number of 3073-byte"):
        ctx_load(Cifar10(), tmp_path, download=False)


def test_cifar10_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        ctx_load(Cifar10(), tmp_path, download=False)
    assert f"CIFAR-10 files missing from {tmp_path / std.CIFAR_FOLDER}: data_batch_1.bin" in e.value.message
    assert "test_batch.bin" in e.value.message and std.CIFAR_URL in (e.value.hint or "")


def make_tar(path: Path, entries: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_cifar10_archive_is_downloaded_and_extracted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    files = {f"{std.CIFAR_FOLDER}/{n}": cifar_records([1, 2])[0] for n in [*std.CIFAR_TRAIN, std.CIFAR_TEST]}
    archive = tmp_path / "server" / std.CIFAR_ARCHIVE
    archive.parent.mkdir()
    make_tar(archive, {**files, f"{std.CIFAR_FOLDER}/readme.html": b"<html>"})
    monkeypatch.setattr(std, "CIFAR_URL", archive.as_uri())
    monkeypatch.setattr(std, "CIFAR_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    a = ctx_load(Cifar10(), tmp_path / "root")
    assert a.x_train.shape == (10, 3, 32, 32) and (tmp_path / "root" / std.CIFAR_ARCHIVE).is_file()


def test_cifar10_archive_with_path_traversal_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    make_tar(root / std.CIFAR_ARCHIVE, {f"{std.CIFAR_FOLDER}/../../evil.txt": b"pwned"})
    monkeypatch.setattr(std, "CIFAR_MD5", hashlib.md5((root / std.CIFAR_ARCHIVE).read_bytes()).hexdigest())
    with pytest.raises(DataError, match="unsafe entry"):
        ctx_load(Cifar10(), root, download=False)
    assert not (tmp_path / "evil.txt").exists()


def test_cifar10_archive_with_a_symlink_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo(f"{std.CIFAR_FOLDER}/data_batch_1.bin")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(DataError, match="unsafe entry"):
        ds.extract_tar(archive, tmp_path / "out", std.CIFAR_FOLDER)
    assert not (tmp_path / "out").exists()


# --- CSV ------------------------------------------------------------------------------------


def test_csv_text_targets_are_sorted_classes(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,b,label\n1,2,dog\n3,4.5,cat\n\n5,6,dog\n")
    a = ctx_load(Csv(path="t.csv", target="label"), tmp_path)
    assert a.classes == ["cat", "dog"] and a.y_train.tolist() == [1, 0, 1] and a.y_train.dtype == np.int64
    assert a.x_train.dtype == np.float32 and a.x_train.tolist() == [[1, 2], [3, 4.5], [5, 6]]
    assert a.x_test is None and list(a.files) == ["t.csv"]


def test_csv_integer_targets_are_classes_in_numeric_order(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("y;f\n10;1\n2;2\n-1;3\n2;4\n")
    a = ctx_load(Csv(path="t.csv", target="y", delimiter=";"), tmp_path)
    assert a.classes == ["-1", "2", "10"] and a.y_train.tolist() == [2, 1, 0, 1]


def test_csv_regression(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("x1,x2,price\n1,2,3.5\n4,5,6.25\n")
    a = ctx_load(Csv(path="t.csv", target="price"), tmp_path)
    assert a.classes is None and a.y_train.dtype == np.float32 and a.y_train.tolist() == [[3.5], [6.25]]
    forced = ctx_load(Csv(path="t.csv", target="x1", task_type="regression"), tmp_path)
    assert forced.y_train.shape == (2, 1) and forced.classes is None


def test_csv_regression_with_text_target_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("x,y\n1,2\n2,high\n")
    with pytest.raises(DataError, match=r"line 3: regression target 'y' is 'high'"):
        ctx_load(Csv(path="t.csv", target="y", task_type="regression"), tmp_path)


def test_csv_missing_target_suggests_columns(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("sepal_length,species\n1,a\n")
    with pytest.raises(DataError) as e:
        ctx_load(Csv(path="t.csv", target="specie"), tmp_path)
    assert "has no column 'specie'; its columns: sepal_length, species" in e.value.message
    assert e.value.hint == "did you mean 'species'?"


def test_csv_non_numeric_feature_names_row_and_column(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,colour,y\n1,2,0\n3,red,1\n")
    with pytest.raises(DataError, match=r"t\.csv, line 3, column 'colour': 'red' is not a number"):
        ctx_load(Csv(path="t.csv", target="y"), tmp_path)


def test_csv_ragged_row(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a,y\n1,0\n3\n")
    with pytest.raises(DataError, match="line 3: 1 fields, but the header has 2"):
        ctx_load(Csv(path="t.csv", target="y"), tmp_path)


def test_paths_resolve_next_to_the_spec_before_the_root(tmp_path: Path) -> None:
    (tmp_path / "spec").mkdir()
    (tmp_path / "root").mkdir()
    (tmp_path / "spec" / "t.csv").write_text("x,y\n1,0\n")
    (tmp_path / "root" / "t.csv").write_text("x,y\n9,0\n")
    assert ctx_load(Csv(path="t.csv", target="y"), tmp_path / "root", tmp_path / "spec").x_train.tolist() == [[1]]
    assert ctx_load(Csv(path="t.csv", target="y"), tmp_path / "root", tmp_path).x_train.tolist() == [[9]]


def test_missing_csv_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        ctx_load(Csv(path="nope.csv", target="y"), tmp_path / "root", tmp_path / "spec")
    assert str(tmp_path / "spec" / "nope.csv") in e.value.message
    assert str(tmp_path / "root" / "nope.csv") in e.value.message and "NETSPEC_DATA" in (e.value.hint or "")


# --- npz --------------------------------------------------------------------------------------


def test_npz_arrays(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", inputs=np.ones((4, 3)), labels=np.array([0, 2, 1, 2]))
    a = ctx_load(Npz(path="d.npz", x="inputs", y="labels"), tmp_path)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64 and a.classes == ["0", "1", "2"]
    np.savez(tmp_path / "r.npz", x=np.zeros((2, 1, 4, 4), np.uint8), y=np.array([0.5, 1.5]))
    r = ctx_load(Npz(path="r.npz"), tmp_path)
    assert r.x_train.dtype == np.uint8 and r.y_train.shape == (2, 1) and r.classes is None


def test_npz_missing_array_lists_what_is_there(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", features=np.ones(2), y=np.zeros(2))
    with pytest.raises(DataError, match="has no array 'x'; its arrays: features, y"):
        ctx_load(Npz(path="d.npz"), tmp_path)


def test_npz_never_unpickles(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.array([{"a": 1}, None], dtype=object), y=np.zeros(2))
    with pytest.raises(DataError, match=r"cannot read .*d\.npz"):
        ctx_load(Npz(path="d.npz"), tmp_path)


# --- text -------------------------------------------------------------------------------------


def test_text_windows_and_vocab(tmp_path: Path) -> None:
    """As nanoGPT splits a text: training windows at every offset of the first part, the held-out
    last part in non-overlapping windows; targets shifted by one."""
    (tmp_path / "t.txt").write_text("abcdefghijklmnopqrst")  # 20 characters: 15 to train on, 5 held out
    a = ctx_load(Text(path="t.txt", seq_len=3, held_out=0.25), tmp_path)
    assert a.vocab == list("abcdefghijklmnopqrst")
    decode = lambda row: "".join(a.vocab[i] for i in row)  # noqa: E731
    assert [decode(r) for r in a.x_train] == [
        "abc",
        "bcd",
        "cde",
        "def",
        "efg",
        "fgh",
        "ghi",
        "hij",
        "ijk",
        "jkl",
        "klm",
        "lmn",
    ]
    assert [decode(r) for r in a.y_train] == [decode(r)[1:] + chr(ord(decode(r)[-1]) + 1) for r in a.x_train]
    assert [decode(r) for r in a.x_test] == ["pqr"] and [decode(r) for r in a.y_test] == ["qrs"]
    assert a.x_train.dtype == np.int64 and a.y_train.dtype == np.int64


def test_text_shorter_than_one_sample(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("abc")
    with pytest.raises(DataError, match="3 characters, too few for a window of seq_len \\+ 1 = 4 in each part"):
        ctx_load(Text(path="t.txt", seq_len=3), tmp_path)


# --- arithmetic ---------------------------------------------------------------------------------


def test_arithmetic_is_deterministic_and_tests_on_other_pairs(tmp_path: Path) -> None:
    source = Arithmetic(samples=100, low=-5.0, high=5.0)
    a, b, c = (ctx_load(source, tmp_path, seed=s) for s in (7, 7, 8))
    assert a.x_test is not None and a.y_test is not None
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.x_train.shape == (100, 2) and a.y_train.shape == (100, 1) and a.x_test.shape == (20, 2)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.float32
    assert a.x_train.min() >= -5 and a.x_train.max() < 5
    np.testing.assert_allclose(a.y_train[:, 0], a.x_train.sum(1))
    np.testing.assert_allclose(a.y_test[:, 0], a.x_test.sum(1))
    assert not set(map(tuple, a.x_test.tolist())) & set(map(tuple, a.x_train.tolist()))


# --- image folders -------------------------------------------------------------------------------


@pytest.fixture
def image_root(tmp_path: Path) -> Path:
    image = pytest.importorskip("PIL.Image")
    for cls, colour in [("cat", (255, 0, 0)), ("dog", (0, 0, 255))]:
        (tmp_path / "pets" / cls / "nested").mkdir(parents=True)
        for i in range(2):
            image.new("RGB", (10, 6), colour).save(tmp_path / "pets" / cls / f"{i}.png")
        image.new("L", (4, 4), 128).save(tmp_path / "pets" / cls / "nested" / "g.png")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("not an image")
    return tmp_path


def test_scan_image_folder(image_root: Path) -> None:
    files, labels, classes = ds.scan_image_folder(image_root / "pets")
    assert classes == ["cat", "dog"] and labels == [0, 0, 0, 1, 1, 1]
    names = [f.relative_to(image_root / "pets").as_posix() for f in files]
    assert names[:4] == ["cat/0.png", "cat/1.png", "cat/nested/g.png", "dog/0.png"]


def test_image_folder_streams_resized_channels_first(image_root: Path) -> None:
    a = ctx_load(ImageFolder(path="pets", size=(8, 5), channels=3), image_root)
    assert isinstance(a.x_train, ds.ImageFiles) and a.classes == ["cat", "dog"]
    assert a.x_train.shape == (6, 3, 8, 5) and len(a.x_train) == 6
    first, fourth = a.x_train.read(0), a.x_train.read(3)
    assert first.shape == (3, 8, 5) and first.dtype == np.uint8
    assert first[:, 0, 0].tolist() == [255, 0, 0] and fourth[:, 0, 0].tolist() == [0, 0, 255]
    assert a.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    # subsets by slice or positions, without decoding
    assert a.x_train[3:].read(0)[:, 0, 0].tolist() == [0, 0, 255]
    assert a.x_train[np.array([3, 0])].files == [a.x_train.files[3], a.x_train.files[0]]
    # recorded by a digest of the file list (names and sizes), which changes with any file
    digest = a.files["pets/"]
    pytest.importorskip("PIL.Image").new("RGB", (3, 3)).save(image_root / "pets" / "dog" / "0.png")
    assert ctx_load(ImageFolder(path="pets", size=4), image_root).files["pets/"] != digest
    grey = ds.read_image(image_root / "pets/cat/nested/g.png", 3, 1)
    assert grey.shape == (1, 3, 3) and grey.dtype == np.uint8 and int(grey[0, 1, 1]) == 128


def test_unreadable_image_and_empty_class_folder(image_root: Path) -> None:
    images = ctx_load(ImageFolder(path="pets", size=4), image_root).x_train
    (image_root / "pets" / "dog" / "0.png").write_bytes(b"not a png")  # spoiled after the index was built
    with pytest.raises(DataError, match=r"0\.png is not a readable image"):
        images.read(3)  # type: ignore[union-attr]
    (image_root / "pets" / "empty").mkdir()
    with pytest.raises(DataError, match=r"class folder .*empty has no images"):
        ds.scan_image_folder(image_root / "pets")


@pytest.mark.parametrize(
    "damage",
    [b"not a png", b"\x89PNG\r\n\x1a\n broken", b"", "truncated"],
)
def test_a_bad_image_is_named_when_the_folder_is_indexed_not_epochs_later(image_root: Path, damage: object) -> None:
    good = (image_root / "pets" / "cat" / "0.png").read_bytes()
    bad = image_root / "pets" / "dog" / "bad.png"
    bad.write_bytes(good[: len(good) // 2] if damage == "truncated" else damage)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"dog/bad\.png is not a readable image"):
        ctx_load(ImageFolder(path="pets", size=4), image_root)


# --- bounded reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [Csv(path="/dev/zero", target="y"), Text(path="/dev/zero"), Npz(path="/dev/zero")])
def test_a_device_as_a_data_file_is_refused_not_read_forever(tmp_path: Path, source: object) -> None:
    with pytest.raises(DataError, match=r"/dev/zero is a device, pipe or socket, not a regular file"):
        ctx_load(source, tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_a_data_file_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(DataError, match=r"pipe\.csv is a device, pipe or socket"):
        ctx_load(Csv(path="pipe.csv", target="y"), tmp_path)


def test_data_files_are_read_up_to_a_configurable_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv").write_text("a,y\n" + "1,0\n" * 300)
    monkeypatch.setenv("NETSPEC_MAX_DATA", "1KiB")
    with pytest.raises(DataError, match=r"d\.csv is larger than netspec reads from one data file \(1,024 bytes\)"):
        ctx_load(Csv(path="d.csv", target="y"), tmp_path)
    monkeypatch.setenv("NETSPEC_MAX_DATA", "2k")
    assert len(ctx_load(Csv(path="d.csv", target="y"), tmp_path).y_train) == 300
    monkeypatch.setenv("NETSPEC_MAX_DATA", "lots")
    with pytest.raises(DataError, match="NETSPEC_MAX_DATA='lots' is not a size"):
        ctx_load(Csv(path="d.csv", target="y"), tmp_path)


def test_a_gzip_bomb_is_cut_at_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(b"a,y\n" + b"1,0\n" * 100_000))
    monkeypatch.setenv("NETSPEC_MAX_DATA", "64KiB")
    with pytest.raises(DataError, match=r"d\.csv\.gz is larger than netspec reads"):
        ctx_load(Csv(path="d.csv.gz", target="y"), tmp_path)


# --- the real data, when NETSPEC_DATA points at it ------------------------------------------------

REAL = os.environ.get("NETSPEC_DATA")
needs_real_data = pytest.mark.skipif(not REAL, reason="set NETSPEC_DATA to a data root to test the real files")


@needs_real_data
@pytest.mark.parametrize(
    "source, folder, first",
    [
        (Mnist(), "mnist", [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]),
        (FashionMnist(), "fashion-mnist", [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]),
    ],
    ids=["mnist", "fashion_mnist"],
)
def test_real_idx_datasets(source: object, folder: str, first: list[int]) -> None:
    a = ctx_load(source, ds.resolve_root(None), download=False)
    assert a.x_train.shape == (60000, 1, 28, 28) and a.y_train.shape == (60000,)
    assert a.x_test is not None and a.y_test is not None and a.x_test.shape == (10000, 1, 28, 28)
    assert a.y_train[:10].tolist() == first and set(np.unique(a.y_test).tolist()) == set(range(10))
    assert a.files == {k: v.sha256 for k, v in std.CHECKSUMS.items() if k.startswith(f"{folder}/")}


@needs_real_data
def test_real_tinyshakespeare() -> None:
    a = ctx_load(Text(path="tinyshakespeare/input.txt", seq_len=64), ds.resolve_root(None))
    cut = int(1115394 * 0.9)  # the first 90% trains, at every offset; the last 10% is held out whole
    assert a.vocab is not None and len(a.vocab) == 65 and a.x_train.shape == (cut - 64, 64)
    assert a.x_test is not None and a.x_test.shape == ((1115394 - cut - 1) // 64, 64)
    assert "".join(a.vocab[i] for i in a.x_train[0][:14]) == "First Citizen:"
    assert a.files == {"tinyshakespeare/input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}


# --- data against the network it trains ---------------------------------------------------------

FIT_SPEC = """
network Net {{
    input {input}
    {layers}
}}

dataset d {{
    source {source}
}}

train {{
    loss {loss}
    optimizer sgd(lr=0.1)
    epochs 1
}}
"""


def fit_program(source: str, *, input: str = "[4]", layers: str = "dense(3)", loss: str = "cross_entropy") -> object:
    from netspec.ir.pipeline import compile_text

    result = compile_text(FIT_SPEC.format(input=input, layers=layers, source=source, loss=loss))
    assert result.program is not None, [d.message for d in result.diagnostics]
    return result.program


FEATURES = np.zeros((6, 4), np.float32)


@pytest.mark.parametrize(
    ("source", "arrays", "said"),
    [
        (
            'csv("d.csv", target="label")',
            Arrays(FEATURES, np.arange(6, dtype=np.int64) % 5, classes=list("abcde")),
            "'d.csv', column 'label' has 5 classes, but network `Net` outputs 3 class scores (labels 0..2)",
        ),
        (
            'npz("d.npz")',
            Arrays(FEATURES, np.array([0, 1, -1, 0, 1, 2])),
            "'d.npz', array 'y' has label -1, but network `Net` outputs 3 class scores",
        ),
        (
            'npz("d.npz", y="labels")',
            Arrays(FEATURES, np.array(list("abcabc"))),
            "'d.npz', array 'labels' holds <U1 values; the network's targets must be real numbers",
        ),
        (
            'npz("d.npz")',
            Arrays(FEATURES.astype(np.complex64), np.zeros(6, np.int64)),
            "'d.npz', array 'x' holds complex64 values; the network's inputs must be real numbers",
        ),
        (
            'csv("d.csv", target="y")',
            Arrays(np.zeros((6, 5), np.float32), np.zeros(6, np.int64), classes=["0"]),
            "'d.csv', the feature columns (all but 'y'): 5 features per sample, but network `Net` takes input [4]",
        ),
        (
            'npz("d.npz")',
            Arrays(FEATURES, np.full(6, 0.5, np.float32)[:, None]),
            "'d.npz', array 'y' holds fractional values, but `cross_entropy` trains classes",
        ),
    ],
)
def test_data_that_does_not_fit_the_network_names_the_file_and_key(source: str, arrays: Arrays, said: str) -> None:
    with pytest.raises(ds.DataMismatch) as caught:
        ds.check_fit(fit_program(source), arrays)  # type: ignore[arg-type]
    assert said in caught.value.message and caught.value.exit_code == 2


def test_a_text_with_more_characters_than_the_embedding_has_rows() -> None:
    program = fit_program('text("t.txt", seq_len=4)', input="[4]", layers="embedding(3, 2)\n    dense(3)")
    ids = np.array([[0, 1, 2, 3], [4, 0, 1, 2]], np.int64)
    arrays = Arrays(ids, np.roll(ids, -1, 1), vocab=list("abcde"))
    with pytest.raises(ds.DataMismatch, match=r"'t\.txt' has 5 distinct characters, but the embedding of network"):
        ds.check_fit(program, arrays)  # type: ignore[arg-type]
    ds.check_fit(program, Arrays(ids % 3, np.roll(ids, -1, 1) % 3, vocab=list("abc")))  # type: ignore[arg-type]


def test_binary_labels_must_be_0_or_1() -> None:
    program = fit_program('npz("d.npz")', layers="dense(1)", loss="bce_logits")
    with pytest.raises(ds.DataMismatch, match="array 'y' has label 2, but `bce_logits` needs labels 0 and 1"):
        ds.check_fit(program, Arrays(FEATURES, np.array([0, 1, 2, 0, 1, 0])))  # type: ignore[arg-type]
    ds.check_fit(program, Arrays(FEATURES, np.array([0, 1, 1, 0, 1, 0])))  # type: ignore[arg-type]


# --- sktime .ts time series -------------------------------------------------------------------

TS_HEADER = "# a comment\n@problemName Tiny\n@timeStamps false\n@univariate {uni}\n@classLabel true b a\n@data\n"


def write_ts(root: Path, name: str, rows: list[str], univariate: bool = True) -> None:
    for split in ("TRAIN", "TEST"):
        text = TS_HEADER.format(uni=str(univariate).lower()) + "\n".join(rows) + "\n"
        (root / f"{name}_{split}.ts").write_text(text)


def test_ts_univariate_series_and_labels_in_the_order_of_classlabel(tmp_path: Path) -> None:
    write_ts(tmp_path, "uni", ["1,2,3:a", "", "4,5,6:b"])
    arrays = load(Ts(path="uni"), tmp_path, None, seed=0)
    assert arrays.x_train.dtype == np.float32 and arrays.x_train.shape == (2, 1, 3)  # type: ignore[union-attr]
    assert arrays.y_train.tolist() == [1, 0] and arrays.classes == ["b", "a"]
    assert arrays.x_test is not None and np.array_equal(arrays.x_test, arrays.x_train)  # type: ignore[arg-type]
    assert set(arrays.files) == {"uni_TRAIN.ts", "uni_TEST.ts"}


def test_ts_multivariate_variable_length_series_are_zero_padded_at_the_end(tmp_path: Path) -> None:
    write_ts(tmp_path, "multi", ["1,2:3,4:a", "5,6,7,8:9,10,11,12:b", "1:2:a"], univariate=False)
    arrays = load(Ts(path="multi", channels=2, length=4), tmp_path, None, seed=0)
    x = arrays.x_train
    assert x.shape == (3, 2, 4)  # type: ignore[union-attr]
    assert x[0].tolist() == [[1, 2, 0, 0], [3, 4, 0, 0]] and x[2].tolist() == [[1, 0, 0, 0], [2, 0, 0, 0]]  # type: ignore[index]


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("1,x:3,4:a", r"multi_TRAIN\.ts, line 8: could not convert string to float: 'x'"),
        ("1,2:3,4:c", r"multi_TRAIN\.ts, line 8: class 'c' is not one of b, a"),
        ("1,2:3:a", r"multi_TRAIN\.ts, line 8: dimensions of different lengths"),
        ("1,2:a", r"multi_TRAIN\.ts, line 8: 1 dimensions, not 2"),
        ("1,2:3,4:", r"multi_TRAIN\.ts, line 8: class '' is not one of b, a"),
    ],
)
def test_a_malformed_ts_row_names_the_file_and_line(tmp_path: Path, row: str, said: str) -> None:
    write_ts(tmp_path, "multi", ["1,2:3,4:a", row], univariate=False)
    with pytest.raises(DataError, match=said):
        load(Ts(path="multi"), tmp_path, None, seed=0)


def test_a_ts_row_without_a_label_names_the_file_and_line(tmp_path: Path) -> None:
    write_ts(tmp_path, "multi", ["1,2,3:a", "1,2,3"])
    with pytest.raises(DataError, match=r"multi_TRAIN\.ts, line 8: no class label"):
        load(Ts(path="multi"), tmp_path, None, seed=0)


def test_ts_without_classes_or_data_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x_TRAIN.ts").write_text("@problemName x\n@classLabel false\n@data\n1,2\n")
    with pytest.raises(DataError, match=r"x_TRAIN\.ts, line 2: @classLabel lists no classes"):
        load(Ts(path="x"), tmp_path, None, seed=0)
    (tmp_path / "x_TRAIN.ts").write_text("@classLabel true 1 2\n")
    with pytest.raises(DataError, match=r"x_TRAIN\.ts: no series"):
        load(Ts(path="x"), tmp_path, None, seed=0)


def test_ts_shape_the_spec_states_is_checked(tmp_path: Path) -> None:
    write_ts(tmp_path, "uni", ["1,2,3:a", "4,5:b"])
    with pytest.raises(DataError, match="the series have length 3, but the source says 5"):
        load(Ts(path="uni", length=5), tmp_path, None, seed=0)


def test_ts_task_before_the_files_are_read() -> None:
    assert Ts(path="p").task().input_shape is None and Ts(path="p").task().target == "class"
    assert Ts(path="p", channels=12, length=29).task().input_shape == (12, 29)


@pytest.mark.skipif(not os.environ.get("NETSPEC_DATA"), reason="needs NETSPEC_DATA")
def test_the_real_gunpoint_and_japanese_vowels() -> None:
    root = Path(os.environ["NETSPEC_DATA"]).expanduser()
    gun = load(Ts(path="ucr-timeseries-classification/GunPoint"), root, None, seed=0)
    assert gun.x_train.shape == (50, 1, 150) and gun.x_test is not None and gun.x_test.shape == (150, 1, 150)  # type: ignore[union-attr]
    assert gun.classes == ["1", "2"] and set(gun.y_train.tolist()) == {0, 1}
    vowels = load(Ts(path="ucr-timeseries-classification/JapaneseVowels"), root, None, seed=0)
    assert vowels.x_train.shape == (270, 12, 29) and vowels.x_test is not None and vowels.x_test.shape == (370, 12, 29)  # type: ignore[union-attr]
    assert vowels.classes == [str(i) for i in range(1, 10)]
