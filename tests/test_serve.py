"""`netspec serve` against the real server, started as a subprocess on a free loopback port: every
endpoint, answers equal to the trained network's own, batching (concurrent requests answered as one
by one), each bad input (a 4xx in the one JSON error format, and the server keeps serving), the
limits, and the command line (a port in use, .pt weights refused, a missing dependency, Ctrl-C)."""

from __future__ import annotations

import base64
import csv
import gzip
import io
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("multipart")
httpx = pytest.importorskip("httpx")

from netspec import cli  # noqa: E402
from tests.test_sample import GAN  # noqa: E402  (the same tiny GAN that `netspec sample` is tested with)

ROOT = Path(__file__).resolve().parent.parent
DATA = os.environ.get("NETSPEC_DATA")
needs_data = pytest.mark.skipif(not DATA, reason="needs NETSPEC_DATA (MNIST, GunPoint)")

CHARS = """\
version 1

network Chars {{
    input [16]
    embedding({vocab}, 16)
    lstm(32)
    dense({vocab})
}}

dataset text {{
    source text("{data}", seq_len=16)
    batch 16
}}

train {{
    model Chars
    loss cross_entropy
    optimizer adam(lr=1e-2)
    steps 30
    seed 2
}}
"""

TABLE = """\
version 1

network Shapes {{
    input [4]
    dense(16) -> relu
    dense(3)
}}

dataset shapes {{
    source csv("{data}", target="kind")
    standardize
    batch 16
}}

train {{
    model Shapes
    loss cross_entropy
    optimizer adam(lr=3e-2)
    epochs 15
    seed 3
}}
"""
COLUMNS = ["length", "width", "height", "weight"]


# --- the server as a subprocess -------------------------------------------------------------------


class Served:
    """`python -m netspec serve ARGS --port 0`: its URL once it listens, its exit code and stderr once stopped."""

    def __init__(self, *args: str, log: Path) -> None:
        command = [sys.executable, "-m", "netspec", "serve", *args]
        command += [] if "--port" in args else ["--port", "0"]
        self.log = log
        self.err = open(log, "w")  # noqa: SIM115 (closed by stop)
        self.proc = subprocess.Popen(
            [*command, "--device", "cpu"], stdout=subprocess.PIPE, stderr=self.err, text=True, cwd=ROOT
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._listening()
        self.client = httpx.Client(base_url=self.url, timeout=60)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _listening(self) -> str:
        try:
            line = self.lines.get(timeout=120)
        except queue.Empty:
            line = ""
        if " on http://" not in line:
            self.proc.kill()
            raise AssertionError(f"the server did not start: {line!r}\n{self.log.read_text()}")
        self.first_line = line
        return line.split(" on ", 1)[1].split()[0]

    def stop(self, sig: int = signal.SIGINT) -> tuple[int, str]:
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.err.close()
        return code, self.log.read_text()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve")


def serving(folder: Path, name: str, *args: str) -> Iterator[Served]:
    server = Served(*args, log=folder / f"{name}.log")
    yield server
    code, err = server.stop()
    assert code == 130 and "Traceback" not in err, err


def mnist_test(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first n MNIST test digits (uint8 [n, 28, 28]) and their labels."""
    assert DATA
    base = Path(DATA) / "mnist"
    x = np.frombuffer(gzip.decompress((base / "t10k-images-idx3-ubyte.gz").read_bytes()), np.uint8, offset=16)
    y = np.frombuffer(gzip.decompress((base / "t10k-labels-idx1-ubyte.gz").read_bytes()), np.uint8, offset=8)
    return x.reshape(-1, 28, 28)[:n], y[:n]


def train(spec: str | Path, out: Path, *overrides: str) -> Path:
    sets = [w for o in overrides for w in ("--set", o)]
    assert cli.main(["run", str(spec), *sets, "--out", str(out), "--device", "cpu", "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def lenet(folder: Path) -> Path:
    if not DATA:
        pytest.skip("needs NETSPEC_DATA (MNIST)")
    return train(ROOT / "specs" / "mnist.net", folder / "lenet", "train.epochs=1", "dataset.limit=6000")


@pytest.fixture(scope="module")
def lenet_server(folder: Path, lenet: Path) -> Iterator[Served]:
    yield from serving(folder, "lenet", str(lenet), "--wait-ms", "20")


@pytest.fixture(scope="module")
def chars(folder: Path) -> Path:
    text = "the cat sat on the mat. " * 60
    (folder / "cats.txt").write_text(text)
    spec = folder / "chars.net"
    spec.write_text(CHARS.format(data=folder / "cats.txt", vocab=len(set(text))))
    run = train(spec, folder / "chars")
    (folder / "cats.txt").unlink()  # serving needs no data: the run keeps its vocabulary
    return run


@pytest.fixture(scope="module")
def chars_server(folder: Path, chars: Path) -> Iterator[Served]:
    yield from serving(folder, "chars", str(chars))


@pytest.fixture(scope="module")
def table(folder: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)) * [1, 5, 0.1, 30] + [0, 10, 0, 100]
    kinds = np.where(x[:, 0] > 0.4, "tall", np.where(x[:, 0] < -0.4, "short", "mid"))
    with open(folder / "shapes.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*COLUMNS[:2], "kind", *COLUMNS[2:]])
        for row, kind in zip(x.round(4).tolist(), kinds):
            writer.writerow([*row[:2], kind, *row[2:]])
    spec = folder / "shapes.net"
    spec.write_text(TABLE.format(data=folder / "shapes.csv"))
    return spec, train(spec, folder / "shapes")


def loaded(run: Path) -> Any:
    """The trained network of a run directory, in this process (what the server must agree with)."""
    from netspec.cli.common import compile_spec, run_options
    from netspec.runtime import trained

    args = cli.build_parser().parse_args(["serve", str(run), "--device", "cpu"])
    result = compile_spec(args, args.file)
    return trained.load(result.program, run_options(args, None), run / "model.safetensors")


def post(server: Served, path: str, **kwargs: Any) -> Any:
    return server.client.post(path, **kwargs)


def probabilities(answer: dict[str, Any]) -> dict[str, float]:
    return {r["class"]: r["probability"] for r in answer["top"]}


def close(a: dict[str, Any], b: dict[str, Any], tol: float = 1e-5) -> bool:
    pa, pb = probabilities(a), probabilities(b)
    return a["class"] == b["class"] and all(abs(pa[k] - pb.get(k, -1)) <= tol for k in pa)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# --- an image classifier --------------------------------------------------------------------------


def test_health_info_and_the_printed_address(lenet_server: Served, lenet: Path) -> None:
    assert lenet_server.first_line.startswith(f"netspec serve: LeNet ({lenet}) on http://127.0.0.1:")
    assert "Ctrl-C stops" in lenet_server.first_line
    assert lenet_server.client.get("/health").json() == {"status": "ok", "network": "LeNet"}
    info = lenet_server.client.get("/info").json()
    assert info["spec"] == "mnist" and info["network"] == "LeNet" and info["output"] == "classes"
    assert info["input"] == {"shape": [1, 28, 28], "dtype": "float32", "image": True, "features": None}
    assert info["classes"] == [str(d) for d in range(10)]
    assert info["preprocessing"] == [{"transform": "normalize", "mean": 0.1307, "std": 0.3081}]
    assert info["metrics"]["test"]["accuracy"] > 0.9 and info["metrics"]["epochs"] == 1
    assert {"netspec", "torch", "python", "fastapi", "uvicorn"} <= set(info["versions"])
    assert info["limits"] == {
        "max_batch": 32,
        "wait_ms": 20.0,
        "max_body": 10 << 20,
        "max_items": 256,
        "max_length": 2000,
    }
    assert {"requests", "forward_passes", "largest_batch"} <= set(info["batches"])
    assert "POST /predict/image" in info["endpoints"] and "POST /generate" not in info["endpoints"]


def test_predictions_are_the_trained_networks(lenet_server: Served, lenet: Path) -> None:
    x, y = mnist_test(64)
    pixels = x.astype(np.float32) / 255
    response = post(lenet_server, "/predict", json={"inputs": pixels[:, None].tolist()})
    assert response.status_code == 200
    answers = response.json()["predictions"]
    assert len(answers) == 64 and all(len(a["top"]) == 5 for a in answers)
    expected = loaded(lenet)(torch.from_numpy(pixels[:, None])).softmax(-1)
    for answer, probs in zip(answers, expected):
        assert answer["class"] == str(int(probs.argmax()))
        for r in answer["top"]:
            assert abs(r["probability"] - float(probs[int(r["class"])])) < 1e-5
    assert np.mean([a["class"] == str(label) for a, label in zip(answers, y)]) > 0.9
    grey = post(lenet_server, "/predict", json={"inputs": [pixels[0].tolist()]}).json()  # [28, 28]: a grey image
    assert close(grey["predictions"][0], answers[0])


def test_image_files_and_base64_images_answer_as_their_pixels(lenet_server: Served) -> None:
    x, _ = mnist_test(3)
    pixels = post(lenet_server, "/predict", json={"inputs": (x[:, None] / 255).tolist()}).json()["predictions"]
    files = [("files", (f"d{i}.png", png(x[i]), "image/png")) for i in range(3)]
    uploaded = post(lenet_server, "/predict/image", files=files).json()["predictions"]
    raw = post(lenet_server, "/predict/image", content=png(x[1]), headers={"Content-Type": "image/png"}).json()
    encoded = base64.b64encode(png(x[2])).decode()
    strings = [encoded, "data:image/png;base64," + encoded]
    as_strings = post(lenet_server, "/predict", json={"inputs": strings}).json()["predictions"]
    assert all(close(a, b) for a, b in zip(uploaded, pixels))
    assert close(raw["predictions"][0], pixels[1])
    assert close(as_strings[0], pixels[2]) and close(as_strings[1], pixels[2])
    from PIL import Image  # a large RGB JPEG: converted to grey and resized to 28x28

    big = io.BytesIO()
    Image.fromarray(np.kron(x[0], np.ones((8, 8), np.uint8))).convert("RGB").save(big, format="JPEG", quality=95)
    answer = post(lenet_server, "/predict/image", files={"files": ("big.jpg", big.getvalue())}).json()
    assert answer["predictions"][0]["class"] == pixels[0]["class"]


def test_concurrent_requests_are_batched_and_answered_as_one_by_one(lenet_server: Served) -> None:
    x, _ = mnist_test(48)
    inputs = (x[:, None] / 255).tolist()
    requests = [inputs[i : i + 1 + i % 3] for i in range(0, 48, 2)]  # 24 requests of 1 to 3 inputs
    sequential = [post(lenet_server, "/predict", json={"inputs": r}).json()["predictions"] for r in requests]
    before = lenet_server.client.get("/info").json()["batches"]

    def ask(r: list[Any]) -> list[dict[str, Any]]:
        with httpx.Client(base_url=lenet_server.url, timeout=60) as client:
            return client.post("/predict", json={"inputs": r}).json()["predictions"]

    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(ask, requests))
    after = lenet_server.client.get("/info").json()["batches"]
    for one, many in zip(sequential, concurrent):
        assert len(one) == len(many) and all(close(a, b) for a, b in zip(one, many))
    requests_done = after["requests"] - before["requests"]
    passes = after["forward_passes"] - before["forward_passes"]
    assert requests_done == 24 and passes < 24 and after["largest_batch"] > 1, (before, after)


def huge_png(side: int = 10_000) -> bytes:
    """A PNG header that claims side x side pixels (a decompression bomb's first bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


JSON, PNG = {"Content-Type": "application/json"}, {"Content-Type": "image/png"}
BAD = [
    # (path, request, status, words in the error)
    ("/predict", {"json": {"inputs": [[1, 2]]}}, 422, "inputs[0] has shape [2], but LeNet takes [1, 28, 28]"),
    (
        "/predict",
        {"json": {"inputs": [[[["a"] * 28] * 28]]}},
        422,
        "inputs[0] holds strings; an input holds numbers only",
    ),
    ("/predict", {"json": {"inputs": [[[[0.5] * 28] * 27 + [[0.5] * 3]]]}}, 422, "rows of different lengths"),
    ("/predict", {"json": {"inputs": [[[[255] * 28] * 28]]}}, 422, "pixel value 255; pixels are in [0, 1]"),
    ("/predict", {"json": {"inputs": [None]}}, 422, "inputs[0] is null, not an array of numbers"),
    ("/predict", {"json": {"inputs": [[[[0.5, None] * 14] * 28]]}}, 422, "inputs[0] holds null, objects or integers"),
    ("/predict", {"json": {"inputs": [[[[True] * 28] * 28]]}}, 422, "holds true/false values"),
    ("/predict", {"json": {"inputs": []}}, 422, "inputs is empty"),
    ("/predict", {"json": {"inputs": [[0] * 2] * 300}}, 413, "300 inputs in one request; at most 256"),
    ("/predict", {"json": {"images": []}}, 422, "inputs: Field required"),
    ("/predict", {"json": [1, 2]}, 422, "Input should be a valid dictionary"),
    ("/predict", {"content": b'{"inputs": [1,', "headers": JSON}, 400, "not valid JSON"),
    ("/predict", {"content": b"inputs=1", "headers": {"Content-Type": "text/plain"}}, 415, "takes application/json"),
    ("/predict", {"json": {"inputs": ["bm90IGFuIGltYWdl"]}}, 400, "inputs[0] is not an image"),
    ("/predict", {"json": {"inputs": ["*not base64*"]}}, 400, "not base64 image data"),
    ("/predict/image", {"files": {"files": ("a.txt", b"not an image")}}, 400, "file 'a.txt' is not an image"),
    ("/predict/image", {"content": b"\x89PNG\r\n\x1a\nbroken", "headers": PNG}, 400, "not an image"),
    ("/predict/image", {"data": {"name": "x"}, "files": {"other": ("", b"")}}, 422, "the form has no file"),
    ("/predict/image", {"content": huge_png(), "headers": PNG}, 413, "the body is 10000x10000 pixels, more than"),
    ("/predict/image", {"files": {"files": ("empty.png", b"")}}, 400, "file 'empty.png' is not an image"),
    ("/predict/image", {"data": {"name": "x"}}, 415, "takes multipart/form-data or image/"),
    ("/predict/image", {"json": {"inputs": []}}, 415, "takes multipart/form-data or image/"),
    ("/generate", {"json": {"prompt": "a"}}, 404, "no endpoint POST /generate; this server has"),
]


@pytest.mark.parametrize(("path", "request_", "status", "words"), BAD, ids=[f"{b[2]}-{b[3][:30]}" for b in BAD])
def test_bad_input_is_a_4xx_json_error_and_the_server_keeps_serving(
    lenet_server: Served, path: str, request_: dict[str, Any], status: int, words: str
) -> None:
    response = post(lenet_server, path, **request_)
    assert response.status_code == status, response.text
    body = response.json()
    assert words in body["error"] and body["status"] == status, body
    assert lenet_server.client.get("/health").status_code == 200


def test_a_shape_error_says_what_was_expected_and_what_came(lenet_server: Served) -> None:
    body = post(lenet_server, "/predict", json={"inputs": [[[0.1] * 27] * 28]}).json()
    assert body["expected"] == [1, 28, 28] and body["got"] == [28, 27]
    assert lenet_server.client.get("/predict").json()["error"] == "/predict does not take GET"


def test_the_body_and_the_items_have_limits(folder: Path, lenet: Path) -> None:
    server = Served(str(lenet), "--max-body", "20KB", "--max-items", "2", "--max-batch", "1", log=folder / "small.log")
    try:
        digit = [[[0.0] * 28] * 28]
        assert post(server, "/predict", json={"inputs": [digit] * 2}).status_code == 200  # 2 x 3.2 kB
        response = post(server, "/predict", json={"inputs": [digit] * 3})
        assert response.status_code == 413 and "3 inputs in one request; at most 2" in response.json()["error"]
        big = json.dumps({"inputs": [digit] * 8}).encode()  # 26 kB
        response = post(server, "/predict", content=big, headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and "at most 20,480 bytes" in response.json()["error"]
        chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))  # no Content-Length: counted while read
        response = post(server, "/predict", content=chunks, headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and "over 20,480 bytes" in response.json()["error"]
        files = [("files", (f"{i}.png", png(np.zeros((28, 28), np.uint8)))) for i in range(3)]
        response = post(server, "/predict/image", files=files)
        assert response.status_code == 413 and "3 files in one request; at most 2" in response.json()["error"]
        info = server.client.get("/info").json()
        assert info["limits"]["max_body"] == 20480 and info["batches"]["largest_batch"] == 1
    finally:
        code, err = server.stop(signal.SIGTERM)
    assert code == 143 and "Traceback" not in err, err


def test_the_page_and_the_docs_load_nothing_from_elsewhere(lenet_server: Served) -> None:
    page = lenet_server.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for needle in ('<canvas id="pad"', '<input type="file" id="file"', '<ol id="top"', 'call("info")'):
        assert needle in page.text
    docs = lenet_server.client.get("/docs")
    schema = lenet_server.client.get("/openapi.json").json()
    assert set(schema["paths"]) == {"/health", "/info", "/predict", "/predict/image"}
    for path in schema["paths"]:
        assert f"<code>{path}</code>" in docs.text
    assert "PredictRequest" in docs.text and "multipart/form-data" in docs.text
    for text in (page.text, docs.text):
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
    assert lenet_server.client.get("/redoc").status_code == 404


# --- a language model -----------------------------------------------------------------------------


def test_a_language_model_streams_its_continuation_as_netspec_sample_does(
    chars_server: Served, chars: Path, capsys: Any
) -> None:
    info = chars_server.client.get("/info").json()
    assert info["output"] == "tokens" and info["takes"] == "text" and info["input"]["dtype"] == "int64"
    assert "POST /generate" in info["endpoints"] and "POST /predict/image" not in info["endpoints"]
    request = {"prompt": "the c", "length": 60, "temperature": 0.7, "top_k": 5, "seed": 3}
    with chars_server.client.stream("POST", "/generate", json=request) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        chunks = list(response.iter_text())
    text = "".join(chunks)
    assert len(text) == 60 and len(chunks) > 1
    capsys.readouterr()
    args = ["--prompt", "the c", "--length", "60", "--temperature", "0.7", "--top-k", "5", "--seed", "3"]
    assert cli.main(["sample", str(chars), *args, "--device", "cpu"]) == 0
    assert capsys.readouterr().out == "the c" + text + "\n"
    again = post(chars_server, "/generate", json=request).text
    assert again == text  # seeded
    default = post(chars_server, "/generate", json={"length": 5})
    assert default.status_code == 200 and len(default.text) == 5


def test_a_language_model_predicts_the_next_character(chars_server: Served, chars: Path) -> None:
    vocab = chars_server.client.get("/info").json()["vocab"]
    text = "the cat sat on the mat. the c"
    ids = [vocab.index(c) for c in text[-16:]]
    answers = post(chars_server, "/predict", json={"inputs": [text, ids]}).json()["predictions"]
    assert close(answers[0], answers[1]) and answers[0]["class"] == "a"
    expected = loaded(chars)(torch.tensor([ids]))[0, -1].softmax(-1)
    assert abs(answers[0]["probability"] - float(expected.max())) < 1e-5


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/generate", {"prompt": "dog!"}, 422, "the prompt has characters the model never saw: '!', 'd', 'g'"),
        ("/generate", {"prompt": "the", "length": 2001}, 422, "length 2001 is over the limit of 2000"),
        ("/generate", {"prompt": "the", "length": 0}, 422, "length: Input should be greater than or equal to 1"),
        ("/generate", {"prompt": "the", "temperature": 0}, 422, "temperature: Input should be greater than 0"),
        ("/generate", {"prompt": "the", "top_k": "many"}, 422, "top_k: Input should be a valid integer"),
        ("/generate", {"prompt": "t" * 10_001}, 422, "prompt: String should have at most 10000 characters"),
        ("/generate", {"prompt": "the", "color": "red"}, 422, "color: Extra inputs are not permitted"),
        ("/predict", {"inputs": [[1.5] * 16]}, 422, "inputs[0] holds fractions, but Chars takes token ids"),
        ("/predict", {"inputs": [[99] * 16]}, 422, "inputs[0] holds token id 99; the ids are 0..10"),
        ("/predict", {"inputs": [[-1] * 16]}, 422, "inputs[0] holds token id -1"),
        ("/predict", {"inputs": ["the cat"]}, 422, "inputs[0] has 7 characters; Chars reads 16 at a time"),
        ("/predict", {"inputs": ["the cat sat on the mat!"]}, 422, "characters the model never saw: '!'"),
        ("/predict", {"inputs": [[1] * 15]}, 422, "inputs[0] has shape [15], but Chars takes [16]"),
    ],
)
def test_bad_requests_to_a_language_model(chars_server: Served, path: str, body: Any, status: int, words: str) -> None:
    response = post(chars_server, path, json=body)
    assert response.status_code == status and words in response.json()["error"], response.text
    assert chars_server.client.get("/health").status_code == 200


# --- tables and values ----------------------------------------------------------------------------


def test_a_table_classifier_names_its_columns_and_answers_as_trained(folder: Path, table: tuple[Path, Path]) -> None:
    spec, run = table
    server = Served(str(spec), "--weights", str(run / "model.safetensors"), log=folder / "table.log")
    try:
        info = server.client.get("/info").json()
        assert info["input"]["features"] == COLUMNS and info["takes"] == "values"
        assert info["classes"] == ["mid", "short", "tall"] and info["preprocessing"][0]["transform"] == "standardize"
        rows = [[2.0, 10.0, 0.0, 100.0], [-2.0, 10.0, 0.0, 100.0], [0.0, 11.0, 0.05, 90.0]]
        answers = post(server, "/predict", json={"inputs": rows}).json()["predictions"]
        expected = loaded(run)(torch.tensor(rows)).softmax(-1)
        assert [a["class"] for a in answers] == ["tall", "short", "mid"]
        for answer, probs in zip(answers, expected):
            assert len(answer["top"]) == 3 and abs(answer["probability"] - float(probs.max())) < 1e-5
        nan = b'{"inputs": [[1, 2, 3, NaN]]}'  # Python's JSON reads NaN
        bad = post(server, "/predict", content=nan, headers={"Content-Type": "application/json"}).json()
        assert "not finite" in bad["error"]
    finally:
        server.stop()


def test_a_binary_classifier_with_one_logit_answers_both_classes(folder: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(100, 2)).round(3)
    with open(folder / "flags.csv", "w", newline="") as f:
        csv.writer(f).writerows([["a", "b", "flag"], *([*row, int(sum(row) > 0)] for row in x.tolist())])
    spec = folder / "flags.net"
    spec.write_text(
        "version 1\nnetwork B {\n    input [2]\n    dense(8) -> relu\n    dense(1)\n}\n"
        f'dataset d {{\n    source csv("{folder / "flags.csv"}", target="flag", task_type="classification")\n'
        "    batch 16\n}\ntrain {\n    model B\n    loss bce_logits\n    optimizer adam(lr=0.03)\n    epochs 5\n}\n"
    )
    run = train(spec, folder / "flags")
    server = Served(str(run), log=folder / "flags.log")
    try:
        answers = post(server, "/predict", json={"inputs": [[2, 2], [-2, -1]]}).json()["predictions"]
        assert [a["class"] for a in answers] == ["1", "0"] and all(len(a["top"]) == 2 for a in answers)
        p = float(loaded(run)(torch.tensor([[2.0, 2.0]])).sigmoid())
        assert abs(probabilities(answers[0])["1"] - p) < 1e-5 and abs(probabilities(answers[0])["0"] - (1 - p)) < 1e-5
    finally:
        server.stop()


def test_a_regression_model_answers_values(folder: Path) -> None:
    run = train(ROOT / "specs" / "addition.net", folder / "addition", "train.epochs=2")
    server = Served(str(run), log=folder / "addition.log")
    try:
        info = server.client.get("/info").json()
        assert info["output"] == "values" and info["input"]["features"] is None and info["classes"] is None
        answers = post(server, "/predict", json={"inputs": [[2, 3], [7.5, 1.25]]}).json()["predictions"]
        expected = loaded(run)(torch.tensor([[2.0, 3.0], [7.5, 1.25]]))
        assert [v for a in answers for v in a["values"]] == pytest.approx(expected.flatten().tolist(), abs=1e-5)
        assert answers[0]["values"][0] == pytest.approx(5, abs=0.5) and "top" not in answers[0]
    finally:
        server.stop()


@needs_data
def test_a_sequence_classifier(folder: Path) -> None:
    run = train(ROOT / "specs" / "gunpoint.net", folder / "gunpoint", "train.epochs=1")
    server = Served(str(run), log=folder / "gunpoint.log")
    try:
        series = np.sin(np.linspace(0, 3, 150))[None].tolist()
        answer = post(server, "/predict", json={"inputs": [series, series[0]]})
        assert answer.status_code == 422 and "has shape [150], but FCN takes [1, 150]" in answer.json()["error"]
        answer = post(server, "/predict", json={"inputs": [series]}).json()["predictions"][0]
        expected = loaded(run)(torch.tensor([series], dtype=torch.float32)).softmax(-1)[0]
        assert abs(answer["probability"] - float(expected.max())) < 1e-5 and len(answer["top"]) == 2
    finally:
        server.stop()


# --- a GAN's generator ---------------------------------------------------------------------------


def test_a_gan_draws_the_samples_of_netspec_sample(folder: Path, tmp_path: Path) -> None:
    x = np.zeros((64, 1, 6, 6), np.uint8)
    x[:, :, 2:4, 2:4] = 255
    np.savez(folder / "blobs.npz", x=x, y=np.zeros(64, np.int64))
    spec = folder / "gan.net"
    spec.write_text(GAN.format(data=folder / "blobs.npz"))
    run = train(spec, folder / "gan")
    server = Served(str(run), "--max-items", "50", log=folder / "gan.log")
    try:
        info = server.client.get("/info").json()
        assert info["takes"] == "samples" and info["network"] == "G" and info["output"] == "images"
        assert "POST /sample" in info["endpoints"] and "POST /predict" not in info["endpoints"]
        drawn = post(server, "/sample", json={"count": 5, "seed": 7, "format": "json"}).json()["samples"]
        assert cli.main(["sample", str(run), "-n", "5", "--seed", "7", "-o", str(tmp_path / "s.npy")]) == 0
        assert np.allclose(np.array(drawn, np.float32), np.load(tmp_path / "s.npy"), atol=1e-6)
        grid = post(server, "/sample", json={"count": 9})
        assert grid.headers["content-type"] == "image/png" and grid.content[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        assert Image.open(io.BytesIO(grid.content)).size == (3 * 6 + 2 * 2, 3 * 6 + 2 * 2)  # 3 x 3, 2-pixel gaps
        too_many = post(server, "/sample", json={"count": 51})
        assert too_many.status_code == 413 and "51 samples in one request; at most 50" in too_many.json()["error"]
        assert post(server, "/sample", json={"count": 2, "format": "gif"}).status_code == 422
        told = post(server, "/sample", json={"count": 2, "label": 1})
        assert told.status_code == 422 and "label needs a conditional GAN" in told.json()["error"]
    finally:
        server.stop()


# --- the command line -----------------------------------------------------------------------------


def serve_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netspec", "serve", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_a_port_in_use_is_a_usage_error(chars: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = serve_cli(str(chars), "--port", str(port), "--device", "cpu")
    assert done.returncode == 2 and f"netspec: error: port {port} is in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_only_safetensors_are_loaded_never_a_pickle(chars: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    pt = tmp_path / "model.pt"
    torch.save(load_file(str(chars / "model.safetensors")), pt)
    done = serve_cli(str(chars / "spec.net"), "--weights", str(pt))
    assert done.returncode == 2 and "loads only .safetensors weights (a .pt file is a pickle)" in done.stderr
    done = serve_cli(str(chars / "spec.net"))
    assert done.returncode == 2 and "needs --weights" in done.stderr


@pytest.mark.parametrize(("option", "value"), [("--max-batch", "0"), ("--max-items", "-1"), ("--port", "70000")])
def test_bad_limits_are_usage_errors(chars: Path, option: str, value: str, capsys: Any) -> None:
    assert cli.main(["serve", str(chars), option, value]) == 2
    assert f"netspec: error: {option} must be" in capsys.readouterr().err


def test_a_missing_dependency_says_what_to_install(chars: Path) -> None:
    block = "import sys; sys.modules['fastapi'] = None"  # `import fastapi` fails
    code = f"{block}; from netspec.cli import main; sys.exit(main(['serve', {str(chars)!r}]))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 2
    said = 'netspec: error: netspec serve needs fastapi and uvicorn: pip install "netspec[serve]"'
    assert done.stderr.strip() == said


def test_ctrl_c_stops_the_server_quietly(folder: Path, chars: Path) -> None:
    server = Served(str(chars), log=folder / "ctrl-c.log")
    with server.client.stream("POST", "/generate", json={"length": 2000}) as response:
        next(response.iter_text())  # a generation under way
        server.proc.send_signal(signal.SIGINT)
        code = server.proc.wait(timeout=30)
    assert code == 130 and "Traceback" not in server.log.read_text()
    server.client.close()
