"""`netspec emit --target pytorch`: standalone scripts that train to exactly the numbers of `netspec run`.

The contract: for every spec in specs/ (and a few more that use the features those do not),
the emitted script, run where netspec cannot be imported, writes the same metrics.csv (the
`seconds` column aside), the same test metrics and the same weights as `netspec run` on
the CPU with the same seed. Besides: the model classes build the very modules (init order,
state-dict keys) that netspec.runtime.build builds; every data source reads the arrays
netspec/datasets.py reads; hostile strings in a spec stay data; the scripts pass ruff with
its default settings; and tests/golden/emit/ holds each spec's script (`make golden`, or
UPDATE_GOLDEN=1, rewrites them after an intended change).
"""

from __future__ import annotations

import ast
import csv
import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from netspec import cli, emit
from netspec.ir.nodes import Program
from netspec.ir.pipeline import compile_text, load
from netspec.language.diagnostics import has_errors

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))
GOLDEN = ROOT / "tests" / "golden" / "emit"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def data_root() -> str | None:
    """$NETSPEC_DATA as an absolute path, resolved once: the scripts run in temp folders, where
    a relative root (`NETSPEC_DATA=../shared/data`, as the README says) points nowhere."""
    env = os.environ.get("NETSPEC_DATA")
    return str(Path(env).expanduser().resolve()) if env else None


DATA = data_root()


def test_a_relative_data_root_is_passed_on_as_an_absolute_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "main").mkdir()
    monkeypatch.chdir(tmp_path / "main")
    monkeypatch.setenv("NETSPEC_DATA", "../shared/data")
    assert data_root() == str((tmp_path / "shared" / "data").resolve())


# What an emitted script must run without: netspec and the packages only netspec needs.
BLOCKED = ("netspec", "pydantic", "lark", "jinja2", "markupsafe", "rich", "matplotlib")
# Runs a script with those made unimportable (sys.modules[name] = None makes `import name` raise).
GUARD = """
import runpy, sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def program_of(text: str, *overrides: str) -> Program:
    result = compile_text(text, overrides=list(overrides))
    assert result.program is not None and not has_errors(result.diagnostics), [d.message for d in result.diagnostics]
    return result.program


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("ruff")
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True)


def assert_ruff_clean(*paths: Path) -> None:
    """ruff with its default settings (no project configuration): lint and format."""
    names = [str(p) for p in paths]
    checked = ruff("check", "--isolated", "--no-cache", *names)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = ruff("format", "--isolated", "--no-cache", "--diff", *names)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


# --- filters: the only way a value reaches a script ------------------------------------------

HOSTILE = [
    "",
    "plain",
    'a"b',
    "a'b",
    'it\'s "both"',
    '"""',
    "'''",
    '"""\nimport os\n"""',
    "back\\slash\\",
    "\\",
    "new\nline\r\n",
    "{{ 7 * 7 }}{% if true %}x{% endif %}{# c #}",
    "__import__('os').system('touch PWNED')",
    "\x00\x1b[31m\u2028\u2029\x85\ufeff",
    "tab\there",
    "é ü 中文 🙂",
    "\ud800",  # a lone surrogate
    "# comment",
    "'" * 5 + '"' * 3,
]


@pytest.mark.parametrize("value", HOSTILE)
def test_strings_are_literals_of_themselves(value: str) -> None:
    text = emit.literal(value)
    assert ast.literal_eval(text) == value
    assert "\n" not in text and "\r" not in text


def test_literals_of_every_accepted_type() -> None:
    for value in [None, True, False, 0, -7, 10**30, 0.1, -2.5, 1e-5, 1e16, 1.5e300, (), (1,), (1, 2.0), [1, "a", None]]:
        assert ast.literal_eval(emit.literal(value)) == value
        assert type(ast.literal_eval(emit.literal(value))) is type(value)
    assert emit.literal(1e16) == "1e16" and emit.literal(True) == "True" and emit.literal((3,)) == "(3,)"
    assert emit.literal(float("inf")) == 'float("inf")' and emit.literal(-math.inf) == '-float("inf")'
    assert emit.literal(float("nan")) == 'float("nan")'


@pytest.mark.parametrize(
    "value",
    [{"a": 1}, {1, 2}, b"bytes", object(), 1j, [object()], (1, {2}), type("S", (str,), {})("x"), np.float32(1)],
)
def test_anything_else_is_refused(value: Any) -> None:
    with pytest.raises(TypeError):
        emit.literal(value)


@pytest.mark.parametrize("name", ["", "1a", "a-b", "a b", "class", "x.import", "a\nb", "é", "a;b", "a()", None, 3])
def test_identifiers_are_checked(name: Any) -> None:
    with pytest.raises(TypeError):
        emit.identifier(name)


def test_text_cannot_end_a_comment_or_a_docstring() -> None:
    for value in HOSTILE:
        text = emit.text(value)
        assert not any(ch in text for ch in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"), repr(text)
        source = f'"""{text}"""  # {text}\nx = 1\n'
        tree = ast.parse(source)
        assert [type(n).__name__ for n in tree.body] == ["Expr", "Assign"]


def test_literals_are_formatted_as_ruff_formats_them(tmp_path: Path) -> None:
    values = [*HOSTILE[:-5], 1e-05, 1e16, 2.5e-300, (1,), ("a'", 'b"'), [0.1, 0.2], -0.0, 10**20]
    path = tmp_path / "literals.py"
    path.write_text("".join(f"X{i} = {emit.literal(v)}\n" for i, v in enumerate(values)), encoding="utf-8")
    assert_ruff_clean(path)


def test_templates_cannot_print_an_unfiltered_value() -> None:
    env = emit.environment("pytorch")
    for value in ["a'b", 3, 0.5, None, ("x",)]:
        with pytest.raises(TypeError, match="without a filter"):
            env.from_string("{{ value }}").render(value=value)
    assert env.from_string("{{ value | lit }}").render(value="a'b") == '"a\'b"'
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing | lit }}").render()


# --- the emitted scripts ---------------------------------------------------------------------


def emitted(spec: Path, *overrides: str) -> str:
    return emit.emit(load(str(spec), list(overrides)), spec=spec.stem, script=f"{spec.stem}.py")


def uses_blocks(spec: Path) -> bool:
    return "block " in spec.read_text()


GOLDEN_CASES = [pytest.param(s, marks=[pytest.mark.torch] if uses_blocks(s) else [], id=s.stem) for s in SPECS]


@pytest.mark.parametrize("spec", GOLDEN_CASES)
def test_golden_scripts(spec: Path) -> None:
    script = emitted(spec)
    golden = GOLDEN / f"{spec.stem}.py"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        golden.write_text(script, encoding="utf-8")
        return
    if not golden.exists():
        pytest.fail(f"{golden.relative_to(ROOT)} is missing; run `make golden` to create it")
    assert script == golden.read_text(encoding="utf-8"), f"{golden.name} differs; if intended, run `make golden`"


def test_golden_scripts_pass_ruff_and_compile() -> None:
    scripts = sorted(GOLDEN.glob("*.py"))
    assert {p.stem for p in scripts} == {s.stem for s in SPECS}
    for path in scripts:
        compile(path.read_text(encoding="utf-8"), str(path), "exec")
    assert_ruff_clean(*scripts)


def top_level_names(text: str) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(text).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Try):
            names |= top_level_names(ast.unparse(node.body))
    return names


def test_every_name_a_template_defines_is_reserved_from_class_names(data_scripts: list[Path]) -> None:
    # a network called like one of these would be renamed: the script's own names must all be listed
    copied = {d for m in ("data", "metrics", "modules", "adversarial") for d in emit.definitions(m)}
    for path in sorted(GOLDEN.glob("*.py")) + data_scripts:
        text = path.read_text(encoding="utf-8")
        models = {
            n.name
            for n in ast.parse(text).body
            if isinstance(n, ast.ClassDef) and n.bases and "nn." in ast.unparse(n.bases[0])
        }
        unlisted = top_level_names(text) - emit.SCRIPT_NAMES - copied - models
        assert not unlisted, (path.name, unlisted)


@pytest.fixture
def data_scripts(tmp_path: Path) -> list[Path]:
    """Scripts for every source and every transform (the model and the data need not fit: only rendered)."""
    from netspec.registry import SOURCES as REGISTRY

    base = program_of(ADDER + "dataset d {\n    source arithmetic\n}\n\n" + TRAIN_ADDER)
    assert base.dataset is not None
    transforms = program_of(
        ADDER.replace("[2]", "[1, 4, 4]").replace("dense(1)", "flatten\n    dense(1)")
        + 'dataset d {\n    source npz("a.npz")\n    normalize(0.5, 0.5)\n    random_flip\n'
        + "    random_crop(4, padding=1)\n    random_shift(1)\n    random_rotation(5)\n}\n\n"
        + TRAIN_ADDER
    )
    out = []
    for name, params in SOURCES.items():
        source = REGISTRY.entries[params["kind"]](**{k: v for k, v in params.items() if k != "kind"})
        for extra in (base, transforms):
            dataset = extra.dataset.model_copy(update={"source": source})  # type: ignore[union-attr]
            path = tmp_path / f"{name}_{len(out)}.py"
            path.write_text(emit.emit(base.model_copy(update={"dataset": dataset}), spec=name), encoding="utf-8")
            out.append(path)
    return out


def test_only_what_the_spec_uses_is_emitted() -> None:
    mlp = (GOLDEN / "mnist_mlp.py").read_text()
    resnet = (GOLDEN / "resnet_cifar.py").read_text()
    absent = ("random_", "augment", "scheduler", "clip_grad", "Residual", "_f1", "tarfile", "F.pad", "autocast")
    # the Meter counts classes only: no top-k, binary threshold or regression errors
    absent += ("top_k", "threshold", "abs_err", "DataLoader", "collate")
    for name in absent:
        assert name not in mlp, name
    for present in ("def random_crop", "def center_crop", "def random_flip", "OneCycleLR", "clip_grad_norm_"):
        assert present in resnet, present
    assert "class Residual(nn.Module)" in resnet and "class ConvBN(nn.Sequential)" in resnet
    assert len(mlp.splitlines()) < len(resnet.splitlines())
    # no early stopping: no state of it; no leftovers of netspec's type checking
    assert "stopped_early: bool" not in mlp and "assert m.confusion" not in mlp
    # a repeat whose iterations are the same is a class built in a loop, not unrolled copies
    assert "class Stage(nn.Sequential)" in resnet and "nn.Sequential(*[Stage(64) for _ in range(2)])" in resnet


def test_scripts_are_in_one_style_untyped() -> None:
    for path in sorted(GOLDEN.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                annotated = [a.arg for a in node.args.args + node.args.kwonlyargs if a.annotation is not None]
                assert node.returns is None and not annotated, (path.name, node.name)


def test_the_cli_writes_the_script_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lenet.py"
    mnist = str(ROOT / "specs" / "mnist.net")
    assert cli.main(["emit", mnist, "--target", "pytorch", "-o", str(out), "--set", "train.epochs=3"]) == 0
    text = out.read_text()
    assert "EPOCHS = 3\n" in text and "python lenet.py" in text
    assert cli.main(["emit", str(ROOT / "specs" / "mnist.net"), "--set", "train.seed=9"]) == 0
    assert "SEED = 9\n" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["emit", str(ROOT / "specs" / "mnist.net"), "--target", "tensorflow"])
    assert emit.TARGETS == ("pytorch",)


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "no-such-folder" / "lenet.py"
    assert cli.main(["emit", str(ROOT / "specs" / "mnist.net"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"netspec: error: cannot write {out}: No such file or directory\n"


def test_a_spec_without_training_cannot_be_emitted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "net.net"
    spec.write_text("network N {\n    input [2]\n    dense(1)\n}\n")
    assert cli.main(["emit", str(spec)]) == 1
    assert "dataset" in capsys.readouterr().err


# --- hostile values stay data ----------------------------------------------------------------

EVIL_PATH = "evil\"\"\"\n__import__('os').system('touch PWNED')\n{{ 7*7 }}{% raw %}\\''' #\u2028.csv"


def spec_string(value: str) -> str:
    """`value` as a spec string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\u2028", "\\u2028") + '"'


EVIL_TARGET = "y\"); __import__('os').system('touch PWNED'); (\""
EVIL_SPEC = (
    "network Net {\n    input [3]\n    dense(2)\n}\n\n"
    f"dataset evil {{\n    source csv({spec_string(EVIL_PATH)}, target={spec_string(EVIL_TARGET)})\n    batch 4\n}}\n\n"
    "train {\n    model Net\n    loss cross_entropy\n    optimizer sgd(lr=0.1)\n"
    "    epochs 2\n    seed 5\n    device cpu\n}\n"
)
EVIL_NAME = 'x"""\nimport os; os.system("touch PWNED")\n\\'


def evil_script(program: Program, folder: Path) -> Path:
    """The hostile spec's script, in `folder`, its spec and script names hostile too."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "evil.py"
    script.write_text(emit.emit(program, spec=EVIL_NAME, script=EVIL_NAME + ".py"), encoding="utf-8")
    return script


def evil_csv(root: Path) -> Path:
    """A CSV file named EVIL_PATH under `root`: 3 numeric features and, second of 4 columns, the
    target EVIL_TARGET (quoted in the header as CSV quotes it), 40 rows of classes 0 and 1."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / EVIL_PATH
    rng = np.random.default_rng(0)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["a", EVIL_TARGET, "b", "c"])
        for i in range(40):
            a, b, c = rng.normal(size=3).round(4)
            writer.writerow([a, i % 2, b + i % 2, c])
    assert path.name == EVIL_PATH and [p.name for p in root.iterdir()] == [EVIL_PATH]
    with open(path, newline="", encoding="utf-8") as f:
        assert next(csv.reader(f))[1] == EVIL_TARGET
    return path


def assert_not_pwned(*folders: Path) -> None:
    for folder in folders:
        assert not list(folder.rglob("PWNED")), folder
    assert not Path("PWNED").exists() and not (ROOT / "PWNED").exists()


@pytest.mark.torch
def test_hostile_strings_stay_data(tmp_path: Path) -> None:
    program = program_of(EVIL_SPEC)
    assert program.dataset is not None and program.dataset.source.path == EVIL_PATH  # type: ignore[union-attr]
    assert program.dataset.source.target == EVIL_TARGET  # type: ignore[union-attr]
    script = evil_script(program, tmp_path / "work")
    text = script.read_text(encoding="utf-8")
    tree = ast.parse(text)
    constants = {
        n.targets[0].id: ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name) and isinstance(n.value, ast.Constant)
    }
    assert constants["DATA_PATH"] == EVIL_PATH
    assert constants["TARGET"] == EVIL_TARGET
    assert constants["SPEC"] == EVIL_NAME
    assert ast.get_docstring(tree) is not None and "touch" in ast.get_docstring(tree)  # type: ignore[operator]
    # nothing but the module docstring, imports, assignments, definitions and the main guard at top level
    assert {type(n).__name__ for n in tree.body} <= {
        "Expr",
        "Import",
        "ImportFrom",
        "Try",
        "Assign",
        "FunctionDef",
        "ClassDef",
        "If",
    }
    assert [n for n in tree.body if isinstance(n, ast.Expr)] == tree.body[:1]
    assert_ruff_clean(script)
    # a relative csv path resolves next to the script (netspec: the spec), then under the data root
    data = tmp_path / "data"
    evil_csv(data)
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    run_netspec(program, tmp_path / "netspec", data, spec_dir, EVIL_NAME)
    result = run_script(script, "--data-dir", str(data), "--out", str(tmp_path / "script"), cwd=script.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for run_dir in (tmp_path / "netspec", tmp_path / "script"):
        assert (run_dir / "summary.json").is_file() and (run_dir / "metrics.csv").is_file()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["spec"] == EVIL_NAME and list(summary["data_sha256"]) == [EVIL_PATH]
    assert len(metrics(tmp_path / "script")) == 2
    assert_same_run(tmp_path / "netspec", tmp_path / "script")
    assert_not_pwned(tmp_path)


@pytest.mark.torch
def test_a_hostile_path_that_is_missing_is_a_clean_error(tmp_path: Path) -> None:
    from netspec.runtime.datasets import DataError

    program = program_of(EVIL_SPEC)
    script = evil_script(program, tmp_path / "work")
    empty = tmp_path / "empty-root"
    empty.mkdir()
    result = run_script(script, "--data-dir", str(empty), "--out", str(tmp_path / "script"), cwd=script.parent)
    assert result.returncode == 1, result.stderr
    assert "not found" in result.stderr and repr(EVIL_PATH) in result.stderr
    assert "Traceback" not in result.stderr
    with pytest.raises(DataError, match="not found"):
        run_netspec(program, tmp_path / "netspec", empty, script.parent, EVIL_NAME)
    assert not (tmp_path / "script" / "summary.json").exists()
    assert_not_pwned(tmp_path)


# --- running the scripts -----------------------------------------------------------------------


def run_script(script: Path, *args: str, cwd: Path | None = None, blocked: tuple[str, ...] = BLOCKED) -> Any:
    """`python script.py ARGS`, single-threaded, where netspec (and what only it needs) cannot be imported."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    command = [sys.executable, "-c", GUARD, ",".join(blocked), str(script), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def run_netspec(program: Program, out: Path, data_dir: Path | str, spec_dir: Path, name: str) -> dict[str, Any]:
    """`netspec run`, in-process and single-threaded like the scripts."""
    torch = pytest.importorskip("torch")
    from netspec.runtime.loop import RunOptions, run

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        options = RunOptions(
            out=out, data_dir=str(data_dir), quiet=True, spec_dir=spec_dir, spec_name=name, download=False
        )
        return run(program, options)
    finally:
        torch.set_num_threads(threads)


def metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def assert_same_run(netspec_dir: Path, script_dir: Path) -> None:
    import torch
    from safetensors.torch import load_file

    assert metrics(netspec_dir) == metrics(script_dir)
    assert len(metrics(netspec_dir)) >= 1
    assert not list(script_dir.glob("*.part")), "every file is written to a .part file, then renamed"
    ours, theirs = (json.loads((d / "summary.json").read_text()) for d in (netspec_dir, script_dir))
    for key in ("spec", "test", "params", "seed", "epochs", "steps", "stopped_early", "device", "data_sha256"):
        assert ours[key] == theirs[key], key
    gan = "g_loss" in metrics(netspec_dir)[0]  # a GAN: no test loss, and each network's weights
    assert ours["test"] or gan
    assert ours.get("samples") == theirs.get("samples")
    for name in ("generator", "discriminator") if gan else ("model",):
        a, b = (load_file(str(d / f"{name}.safetensors")) for d in (netspec_dir, script_dir))
        assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a), name


def equivalence(spec: Path, overrides: list[str], data_dir: Path | str, tmp_path: Path) -> None:
    program = load(str(spec), overrides)
    script = tmp_path / f"{spec.stem}.py"
    script.write_text(emit.emit(program, spec=spec.stem, script=script.name), encoding="utf-8")
    run_netspec(program, tmp_path / "netspec", data_dir, spec.parent, spec.stem)
    result = run_script(script, "--data-dir", str(data_dir), "--out", str(tmp_path / "script"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(tmp_path / "netspec", tmp_path / "script")


def cifar_files(root: Path, per_batch: int = 60, test: int = 50) -> Path:
    """Small CIFAR-10 batch files in the official binary format: a label byte, then 3072 pixels."""
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [(f"data_batch_{i}.bin", per_batch) for i in range(1, 6)] + [("test_batch.bin", test)]:
        labels = rng.integers(0, 10, (n, 1), dtype=np.uint8)
        pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        (folder / name).write_bytes(np.concatenate([labels, pixels], 1).tobytes())
    return root


QUICK = ["train.epochs=1", "dataset.limit=512"]
SPEC_RUNS = {
    "mnist": QUICK,
    "mnist_mlp": QUICK,
    "fashion": QUICK,
    "gan": QUICK,
    "fashion_gan": QUICK,
    "cgan": QUICK,
    "addition": ["train.epochs=2"],
    "addition_tune": ["train.epochs=2"],  # at the defaults of its search expressions
    "shakespeare": ["train.steps=20"],
    "shakespeare_gpt": ["train.steps=5"],
    "gunpoint": ["train.epochs=2"],
    "cifar10": ["train.epochs=2", "dataset.limit=200"],
    "resnet_cifar": ["train.epochs=1", "dataset.limit=128"],
}
OFFLINE = {"addition", "addition_tune", "cifar10", "resnet_cifar"}  # generated data


def test_every_spec_has_an_equivalence_run() -> None:
    assert set(SPEC_RUNS) == {s.stem for s in SPECS}


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SPEC_RUNS))
def test_script_trains_to_the_numbers_of_netspec_run(name: str, tmp_path: Path) -> None:
    if name not in OFFLINE and not DATA:
        pytest.skip("needs NETSPEC_DATA")
    data_dir: Path | str = DATA or tmp_path
    if name in ("cifar10", "resnet_cifar"):
        data_dir = cifar_files(tmp_path / "data")
    equivalence(ROOT / "specs" / f"{name}.net", SPEC_RUNS[name], data_dir, tmp_path)


# --- features the specs in specs/ do not use ---------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small generated datasets: grey 8x8 images (as an npz and as PNG folders), a table with
    text classes, one with 0/1 targets and one with numeric targets, and a text."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, (90, 1, 8, 8), dtype=np.uint8)
    labels = np.arange(90) % 3
    for k in range(3):
        images[labels == k, :, :, 2 * k : 2 * k + 2] = 230
    np.savez(root / "images.npz", x=images, y=labels.astype(np.uint8))
    from PIL import Image

    for i, (img, label) in enumerate(zip(images[:45], labels[:45])):
        folder = root / "folder" / "abc"[label]
        folder.mkdir(parents=True, exist_ok=True)
        rgb = np.stack([img[0], img[0] // 2, 255 - img[0]], -1)
        Image.fromarray(rgb).save(folder / f"{i:02d}.png")
    (root / "folder" / "a" / ".hidden.png").write_bytes(b"not an image")
    x = (rng.normal(size=(160, 4)) * [1, 50, 0.1, 3] + [0, 10, 0, -1]).astype(np.float32)
    kinds = np.where(x[:, 0] > 0.3, "tall", np.where(x[:, 0] < -0.3, "short", "mid"))
    with open(root / "classes.csv", "w", newline="") as f, open(root / "numbers.csv", "w", newline="") as g:
        classes, numbers = csv.writer(f), csv.writer(g)
        classes.writerow(["a", " b ", "c", "d", "kind", "e"])
        numbers.writerow(["a", "b", "c", "d", "value", "flag"])
        for row, kind in zip(x.tolist(), kinds):
            classes.writerow([*map(repr, row), kind, "1e-3"])
            numbers.writerow([*map(repr, row), repr(row[0] * 2 + row[2]), int(row[0] > 0)])
            if row[0] > 1.5:
                classes.writerow([])  # blank lines are skipped
                numbers.writerow(["", " "])
    (root / "text.txt").write_text("the quick brown fox jumps over the lazy dog. " * 40)
    import gzip

    (root / "semicolons.csv.gz").write_bytes(gzip.compress("\ufeffa;b\n1.5;x\n\n-2;y\n3e2;x\n".encode()))
    return root


IMAGES_NET = """
block Unit(c, k=3) {
    conv2d(c, kernel=k, padding="same") -> batchnorm -> relu
}

network Net {
    input [1, 8, 8]
    Unit(4)
    Unit(6, k=1)
    maxpool(2)
    flatten
    dropout(0.1)
    dense(3)
}
"""

FEATURES_NET = """
network Net {
    input [5]
    dense(16) -> elu
    dense(%s)%s
}
"""

FEATURE_CASES = {
    # npz images: rotation, crop, vertical flip and standardize after them; plateau; early stopping; f1/top_k
    "npz_augment": (
        IMAGES_NET,
        'npz("images.npz")',
        'random_rotation(10)\n    random_crop(8, padding=1)\n    random_flip(axis="vertical")\n    standardize',
        "validation 0.2\n    shuffle false",
        "loss cross_entropy(label_smoothing=0.05)\n    optimizer rmsprop(lr=0.01, momentum=0.5)\n"
        '    schedule plateau(factor=0.5, patience=0, monitor="val_accuracy")\n    epochs 4\n'
        '    early_stopping(monitor="val_accuracy", patience=2)\n'
        '    metrics accuracy, f1(average="weighted"), top_k(2), precision(average="micro")',
    ),
    # image folder (RGB PNGs): shift, then per-channel normalize per batch; one-cycle over `steps`
    "folder_shift": (
        IMAGES_NET.replace("[1, 8, 8]", "[3, 8, 8]"),
        'image_folder("folder", size=8)',
        "random_shift(1)\n    normalize(mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3])",
        "validation 0.2\n    test 0.25",
        "loss cross_entropy\n    optimizer adamw(lr=0.003)\n    schedule onecycle(max_lr=0.01)\n    steps 7\n"
        "    metrics accuracy, recall",
    ),
    # image folder read as greyscale: normalize, a random crop (centre crop at evaluation), normalize again
    "folder_crop": (
        IMAGES_NET,
        'image_folder("folder", size=8, channels=1)',
        "normalize(0.5, 0.25)\n    random_crop(8, padding=1)\n    normalize(0.1, 2)",
        "validation 0.2",
        "loss cross_entropy\n    optimizer sgd(lr=0.05)\n    epochs 2\n    metrics accuracy",
    ),
    # csv with text classes: standardize once, cosine, gradient clipping, weighted precision
    "csv_classes": (
        FEATURES_NET % (3, " -> log_softmax"),
        'csv("classes.csv", target="kind")',
        "standardize",
        "validation 0.2\n    limit 100",
        "loss nll\n    optimizer sgd(lr=0.05, momentum=0.9, nesterov=true)\n    schedule cosine\n    epochs 3\n"
        '    clip_grad 0.5\n    metrics accuracy, precision(average="weighted")',
    ),
    # csv with 0/1 targets: one logit and a weighted positive class; step schedule
    "csv_binary": (
        FEATURES_NET % (1, ""),
        'csv("numbers.csv", target="flag", task_type="classification")',
        "standardize",
        "validation 0.25",
        "loss bce_logits(pos_weight=2.0)\n    optimizer adam(lr=0.01, amsgrad=true)\n    schedule step(1, gamma=0.5)\n"
        "    epochs 2\n    metrics accuracy, f1",
    ),
    # csv regression: huber, warm-up, mae and mse, no validation
    "csv_values": (
        FEATURES_NET % (1, ""),
        'csv("numbers.csv", target="value", task_type="regression")',
        "normalize(mean=0.0, std=2.0)",
        "",
        "loss huber(0.5)\n    optimizer adagrad(lr=0.05)\n    schedule warmup(3)\n    epochs 2\n    metrics mae, mse",
    ),
}


def feature_spec(case: str) -> str:
    net, source, transforms, dataset, train = FEATURE_CASES[case]
    return f"""{net}
dataset data {{
    source {source}
    {transforms}
    batch 16
    {dataset}
}}

train {{
    model Net
    {train}
    seed 5
    device cpu
}}
"""


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(FEATURE_CASES))
def test_features_train_to_the_numbers_of_netspec_run(case: str, data: Path, tmp_path: Path) -> None:
    spec = data / f"{case}.net"  # beside the data: relative paths resolve next to the spec (and the script)
    spec.write_text(feature_spec(case))
    work = tmp_path / "work"
    work.mkdir()
    program = load(str(spec))
    script = data / f"{case}.py"
    script.write_text(emit.emit(program, spec=case), encoding="utf-8")
    assert_ruff_clean(script)
    run_netspec(program, work / "netspec", tmp_path / "empty-root", data, case)
    result = run_script(script, "--data-dir", str(tmp_path / "empty-root"), "--out", str(work / "script"), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(work / "netspec", work / "script")


@pytest.mark.torch
def test_a_corrupt_image_met_while_streaming_stops_the_script_cleanly(data: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(data / "folder", tmp_path / "folder")
    (tmp_path / "folder" / "b" / "03.png").write_bytes(b"\x89PNG broken")
    script = tmp_path / "broken.py"
    script.write_text(emit.emit(program_of(feature_spec("folder_crop")), spec="broken"), encoding="utf-8")
    result = run_script(script, "--out", str(tmp_path / "run"), cwd=tmp_path)
    assert result.returncode == 1
    assert "03.png is not a readable image" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.torch
def test_the_scripts_streamed_batches_are_the_same_with_any_number_of_workers(data: Path, tmp_path: Path) -> None:
    import torch

    script = data / "workers.py"
    script.write_text(emit.emit(program_of(feature_spec("folder_crop")), spec="workers"), encoding="utf-8")
    module = import_script(script)
    splits, _, _ = module.prepare_data(data, 5, torch.device("cpu"))
    order = torch.randperm(len(splits["train"][0]), generator=torch.Generator().manual_seed(1))
    seen = []
    for workers in (0, 2):
        module.workers = lambda device, workers=workers: workers
        seen.append(list(module.batches(splits["train"], order, 7)))
    assert len(seen[0]) == len(seen[1]) == math.ceil(len(order) / 7)
    for (x0, y0), (x2, y2) in zip(*seen):
        assert torch.equal(x0, x2) and torch.equal(y0, y2)


def test_whole_split_statistics_cannot_stream(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.net"
    spec.write_text(feature_spec("folder_crop").replace("normalize(0.5, 0.25)", "standardize"))
    assert cli.main(["emit", str(spec)]) == 1
    assert "`standardize` computes statistics over the whole training split" in capsys.readouterr().err


@pytest.mark.torch
def test_a_resumed_script_run_ends_where_an_uninterrupted_one_does(data: Path, tmp_path: Path) -> None:
    spec = data / "resume.net"
    spec.write_text(feature_spec("npz_augment").replace("epochs 4", "epochs 3"))
    script = data / "resume.py"
    script.write_text(emit.emit(load(str(spec)), spec="resume"), encoding="utf-8")
    straight = run_script(script, "--out", str(tmp_path / "straight"), "--epochs", "3")
    first = run_script(script, "--out", str(tmp_path / "resumed"), "--epochs", "1")
    second = run_script(script, "--resume", str(tmp_path / "resumed"), "--epochs", "3")
    assert straight.returncode == first.returncode == second.returncode == 0, second.stderr
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "resumed")
    assert len(metrics(tmp_path / "resumed")) == 3
    missing = run_script(script, "--resume", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "no checkpoint" in missing.stderr


@pytest.mark.torch
def test_a_write_that_fails_halfway_leaves_the_last_file_whole(data: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    script = data / "atomic.py"
    script.write_text(emit.emit(program_of(feature_spec("csv_values")), spec="atomic"), encoding="utf-8")
    module = import_script(script)
    weights = tmp_path / "model.safetensors"
    module.write_atomic(weights, lambda part: module.save_file(torch.nn.Linear(3, 1).state_dict(), part))
    saved = load_file(str(weights))

    def crash(path: Any) -> None:
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        module.write_atomic(weights, crash)
    again = load_file(str(weights))
    assert list(again) == list(saved) and all(torch.equal(again[k], saved[k]) for k in saved)


@pytest.mark.torch
def test_without_safetensors_the_weights_go_to_a_pt_file(data: Path, tmp_path: Path) -> None:
    import torch

    spec = data / "pt.net"
    spec.write_text(feature_spec("csv_values"))
    script = data / "pt.py"
    script.write_text(emit.emit(load(str(spec)), spec="pt"), encoding="utf-8")
    result = run_script(script, "--out", str(tmp_path / "run"), blocked=(*BLOCKED, "safetensors"))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "run" / "model.safetensors").exists()
    state = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]


# --- the data sources read netspec's arrays -------------------------------------------------------


def import_script(path: Path) -> Any:
    """An emitted script as a module (its main() does not run)."""
    spec = importlib.util.spec_from_file_location(f"emitted_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SOURCES: dict[str, dict[str, Any]] = {
    "csv_auto_text": {"kind": "csv", "path": "classes.csv", "target": "kind"},
    "csv_auto_values": {"kind": "csv", "path": "numbers.csv", "target": "value"},
    "csv_auto_integers": {"kind": "csv", "path": "numbers.csv", "target": "flag"},
    "csv_classification": {"kind": "csv", "path": "numbers.csv", "target": "value", "task_type": "classification"},
    "csv_regression": {"kind": "csv", "path": "numbers.csv", "target": "flag", "task_type": "regression"},
    "csv_delimiter": {"kind": "csv", "path": "semicolons.csv.gz", "target": "b", "delimiter": ";"},
    "npz": {"kind": "npz", "path": "images.npz"},
    "text": {"kind": "text", "path": "text.txt", "seq_len": 16},
    "image_folder_rgb": {"kind": "image_folder", "path": "folder", "size": (6, 5)},
    "image_folder_grey": {"kind": "image_folder", "path": "folder", "size": 8, "channels": 1},
    "arithmetic": {"kind": "arithmetic", "samples": 50, "low": -2.0, "high": 3.5},
}


ADDER = "network Adder {\n    input [2]\n    dense(1)\n}\n\n"
TRAIN_ADDER = "train {\n    model Adder\n    loss mse\n    optimizer sgd\n    epochs 1\n    seed 4\n}\n"


@pytest.mark.torch
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sources_read_the_arrays_netspec_reads(name: str, data: Path) -> None:
    from netspec.registry import SOURCES as REGISTRY
    from netspec.runtime.datasets import load as load_source

    base = program_of(ADDER + "dataset d {\n    source arithmetic\n}\n\n" + TRAIN_ADDER)
    params = {k: v for k, v in SOURCES[name].items() if k != "kind"}
    source = REGISTRY.entries[SOURCES[name]["kind"]](**params)
    assert base.dataset is not None
    program = base.model_copy(update={"dataset": base.dataset.model_copy(update={"source": source})})
    script = data / f"source_{name}.py"
    script.write_text(emit.emit(program, spec=name), encoding="utf-8")
    module = import_script(script)
    assert program.dataset is not None
    expected = load_source(program.dataset.source, data, data, seed=4, download=False)
    got = module.load_data(4) if name == "arithmetic" else module.load_data(data / "no-such-root")
    want = [expected.x_train, expected.y_train]
    want += [expected.x_test, expected.y_test] if expected.x_test is not None else []
    assert len(got) == len(want) + 1
    if name.startswith("image_folder"):  # streamed: the same files, decoding to the same pixels
        images, got = got[0], got[1:]
        assert images.files == expected.x_train.files and len(images) == len(expected.x_train)  # type: ignore[union-attr]
        for i in (0, len(images) - 1):
            pixels, error = images[i]
            assert error is None and np.array_equal(pixels.numpy(), expected.x_train.read(i))  # type: ignore[union-attr]
        assert [p.name for p in images[1:3].files] == [p.name for p in expected.x_train.files[1:3]]  # type: ignore[union-attr]
        want = want[1:]
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert got[-1] == expected.files


@pytest.mark.torch
@pytest.mark.skipif(not DATA, reason="needs NETSPEC_DATA")
@pytest.mark.parametrize("name", ["mnist", "fashion"])
def test_idx_sources_read_the_arrays_netspec_reads(name: str) -> None:
    from netspec.runtime.datasets import load as load_source

    program = load(str(ROOT / "specs" / f"{name}.net"))
    module = import_script_text(emit.emit(program, spec=name), name)
    assert program.dataset is not None
    expected = load_source(program.dataset.source, Path(str(DATA)), None, seed=0, download=False)
    got = module.load_data(Path(str(DATA)))
    for a, b in zip(got, [expected.x_train, expected.y_train, expected.x_test, expected.y_test]):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert got[-1] == expected.files


def import_script_text(text: str, name: str) -> Any:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{name}.py"
        path.write_text(text, encoding="utf-8")
        return import_script(path)


@pytest.mark.torch
def test_a_corrupt_idx_file_is_refused(tmp_path: Path) -> None:
    script = tmp_path / "mnist.py"
    script.write_text(emitted(ROOT / "specs" / "mnist.net"), encoding="utf-8")
    folder = tmp_path / "root" / "mnist"
    folder.mkdir(parents=True)
    for name in (
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ):
        (folder / name).write_bytes(b"\x1f\x8b not the original")
    result = run_script(script, "--data-dir", str(tmp_path / "root"), "--out", str(tmp_path / "out"))
    assert (
        result.returncode == 1
        and "is missing or not the original" in result.stderr
        and "Traceback" not in result.stderr
    )


# --- the model classes build netspec.runtime.build's modules ---------------------------------------------

MODELS = """
let width = 6

block Unit(nn, k=3) {
    conv1d(nn, kernel=k, padding="same") -> batchnorm -> gelu
}

block Pair(a) {
    dense(a) -> relu
    dense(a)
}

block Stack(n) {
    repeat n {
        dense(8) -> tanh
    }
}

block Outer(c, s=1) {
    conv2d(c, kernel=3, stride=s, padding=1, bias=false) -> batchnorm(momentum=0.2)
    residual {
        conv2d(c, kernel=3, padding=1) -> leaky_relu(0.1)
    }
}

block Once {
    upsample(2) -> conv_transpose2d(4, kernel=2, stride=2) -> avgpool(2, stride=2)
}

network Tokens {
    input [12]
    embedding(20, 16)
    attention(2, causal=true)
    transformer_encoder(heads=4, ff=32, layers=2, dropout=0.0, norm_first=true, activation="gelu")
    gru(8, layers=2, bidirectional=true)
    lstm(8, return_sequences=false)
    layernorm
    Pair(8)
    Pair(16)
    Stack(1)
    Stack(2)
    dense(3) -> log_softmax
}

network State {
    input [3, 16, 16]
    Outer(width)
    Outer(width * 2, s=2)
    Once
    global_avgpool
    dropout(0.3)
    dense(10) -> softmax
}

network Signal {
    input [4, 32]
    Unit(8)
    Unit(8, k=5)
    Unit(4, k=5)
    maxpool(2, padding=1)
    flatten
    dense(5) -> sigmoid
}

network Adder {
    input [2]
    dense(1)
}

dataset d {
    source arithmetic
}

train {
    model Adder
    loss mse
    optimizer sgd
    epochs 1
}
"""


@pytest.mark.torch
def test_model_classes_build_the_modules_netspec_builds(tmp_path: Path) -> None:
    import torch
    from torch import nn

    from netspec.runtime.build import build_network

    program = program_of(MODELS)
    script = tmp_path / "models.py"
    script.write_text(emit.emit(program, spec="models"), encoding="utf-8")
    assert_ruff_clean(script)
    source = script.read_text()
    assert "class Unit(nn.Sequential)" in source and "def __init__(self, in_channels, nn_, k):" in source
    assert (
        "class Pair(nn.Sequential)" in source and "nn.Linear(a, a)" in source
    )  # positions with equal values share a parameter
    assert "class Stack(" not in source and "# block Stack" in source  # its uses differ in structure
    assert "class State_(nn.Sequential)" in source  # renamed: the script has a State
    assert "class Once(nn.Sequential)" in source and "Once(),  # -> [4, 16, 16]" in source
    assert "nn.Sequential(*[Stage(8) for _ in range(2)])" in source  # Stack(2)'s repeat: a loop
    module = import_script(script)
    classes = {"Tokens": module.Tokens, "State": module.State_, "Signal": module.Signal, "Adder": module.Adder}
    for net in program.networks:
        torch.manual_seed(0)
        want = build_network(net)
        torch.manual_seed(0)
        got = classes[net.name]()
        a, b = want.state_dict(), got.state_dict()
        assert list(a) == list(b), net.name
        assert all(torch.equal(a[k], b[k]) for k in a), net.name

        def kinds(model: nn.Module) -> list[tuple[str, str]]:
            return [
                (n, "Sequential" if isinstance(m, nn.Sequential) else type(m).__name__)
                for n, m in model.named_modules()
            ]

        assert kinds(want) == kinds(got), net.name
        want.eval(), got.eval()
        x = torch.randint(0, 20, (2, 12)) if net.name == "Tokens" else torch.randn(2, *net.input_shape)
        assert torch.equal(want(x), got(x)), net.name


GPT_SPEC = """
network GPT {
    input [12]
    embedding(20, 16)
    positional_embedding(16)
    transformer_encoder(heads=2, ff=32, causal=true, norm_first=true)
    permute([1, 0]) -> dense(12) -> permute([1, 0])  # mixing across positions, as in MLP-Mixer
    layernorm
    pool("last")
    dense(3)
}

dataset tokens {
    source npz("tokens.npz")
    batch 16
    validation 0.2
}

train {
    model GPT
    loss cross_entropy
    optimizer adamw(lr=0.003)
    epochs 1
    metrics accuracy
    seed 5
    device cpu
}
"""


@pytest.mark.torch
def test_a_gpt_style_classifier_trains_to_the_numbers_of_netspec_run(tmp_path: Path) -> None:
    """embedding -> positional_embedding -> causal pre-norm encoder -> permute -> pool -> dense, on token ids."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, (120, 12)).astype(np.int64)
    np.savez(tmp_path / "tokens.npz", x=x, y=(x[:, -3:].sum(1) % 3).astype(np.int64))
    spec = tmp_path / "gpt.net"
    spec.write_text(GPT_SPEC)
    program = load(str(spec))
    script = tmp_path / "gpt.py"
    script.write_text(emit.emit(program, spec="gpt"), encoding="utf-8")
    assert_ruff_clean(script)
    source = script.read_text()
    assert all(f"class {name}(nn.Module)" in source for name in ("PositionalEmbedding", "SequencePool", "Permute"))
    work = tmp_path / "work"
    work.mkdir()
    run_netspec(program, work / "netspec", tmp_path / "empty-root", tmp_path, "gpt")
    result = run_script(script, "--data-dir", str(tmp_path / "empty-root"), "--out", str(work / "script"), cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_run(work / "netspec", work / "script")


# --- nanoGPT's Shakespeare model (issue 12) ----------------------------------------------------------

GPT_ALPHABET = "\n !',.:;?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-&$3"  # 65, as Tiny Shakespeare


@pytest.mark.torch
def test_the_shakespeare_gpt_on_a_small_text_trains_to_the_numbers_of_netspec_run(tmp_path: Path) -> None:
    """Random offsets, the held-out tail, tied weights, GPT-2's init, nanoGPT's schedule and decay groups."""
    rng = np.random.default_rng(1)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "small.txt").write_text("".join(rng.choice(list(GPT_ALPHABET), 3000)))
    overrides = ['dataset.source=text("small.txt", seq_len=64)', "train.steps=5"]
    equivalence(ROOT / "specs" / "shakespeare_gpt.net", overrides, tmp_path / "data", tmp_path)
    source = (tmp_path / "shakespeare_gpt.py").read_text()
    assert_ruff_clean(tmp_path / "shakespeare_gpt.py")
    for line in (
        "class Block(nn.Sequential):",
        "tie_weights(self)",
        "WarmupCosine(optimizer, warmup=100, total=total_steps, min_lr=0.0001)",
        "matrix_decay(model, 0.1)",
        "init_normal(nn.Embedding(65, 128), std=0.02)",
    ):
        assert line in source, line
    assert (tmp_path / "netspec" / "vocab.json").is_file()


# --- sktime .ts time series (issue 12) -------------------------------------------------------------

GUNPOINT_NET = """version 1

network Gun {
    input [1, 150]
    conv1d(8, kernel=7, padding="same") -> relu
    maxpool(2)
    conv1d(16, kernel=5, padding="same") -> relu
    global_avgpool
    dense(2)
}

dataset gunpoint {
    source ts("ucr-timeseries-classification/GunPoint", channels=1, length=150)
    batch 16
}

train {
    model Gun
    loss cross_entropy
    optimizer adam(lr=3e-3)
    epochs 2
    metrics accuracy
    seed 3
}
"""


@pytest.mark.torch
def test_ts_source_reads_the_arrays_netspec_reads(tmp_path: Path) -> None:
    from netspec.registry import SOURCES as REGISTRY
    from netspec.runtime.datasets import load as load_source

    header = "@problemName T\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true x y\n@data\n"
    (tmp_path / "t_TRAIN.ts").write_text(header + "1,2:3,4:y\n5,6,7:8,9,10:x\n")
    (tmp_path / "t_TEST.ts").write_text(header + "1.5:2.5:x\n")
    base = program_of(ADDER + "dataset d {\n    source arithmetic\n}\n\n" + TRAIN_ADDER)
    assert base.dataset is not None
    source = REGISTRY.entries["ts"](path="t")
    program = base.model_copy(update={"dataset": base.dataset.model_copy(update={"source": source})})
    script = tmp_path / "source_ts.py"
    script.write_text(emit.emit(program, spec="ts"), encoding="utf-8")
    assert_ruff_clean(script)
    expected = load_source(source, tmp_path, None, seed=0, download=False)
    got = import_script(script).load_data(tmp_path)
    want = [expected.x_train, expected.y_train, expected.x_test, expected.y_test]
    for a, b in zip(got, want):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    assert got[-1] == expected.files and got[2].shape == (1, 2, 3)


@pytest.mark.torch
@pytest.mark.skipif(not DATA, reason="needs NETSPEC_DATA")
def test_a_conv1d_net_on_gunpoint_trains_to_the_numbers_of_netspec_run(tmp_path: Path) -> None:
    spec = tmp_path / "gunpoint.net"
    spec.write_text(GUNPOINT_NET, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    equivalence(spec, [], str(DATA), work)


# --- GANs: the adversarial trainer ----------------------------------------------------------------

GAN_NET = """
network G {
    input [8]
    dense(64) -> relu
    dense(64) -> tanh
    reshape([1, 8, 8])
}

network D {
    input [1, 8, 8]
    conv2d(4, kernel=3, padding=1) -> leaky_relu(0.2)
    flatten
    dense(1)
}

dataset images {
    source npz("images.npz")
    normalize(0.5, 0.5)
    %s
    batch 20
}

train {
    generator G
    discriminator D
    %s
    optimizer adam(lr=0.001, betas=[0.5, 0.999])
    seed 6
}
"""
GAN_CASES = {  # (dataset, train): 5 batches an epoch, so that d_steps=2 crosses epochs
    "bce_smoothing_validation": ("validation 0.2", "loss gan_bce(0.1)\n    epochs 2"),
    "wgan_gp_d_steps_clip": (
        "shuffle true",
        "task gan(d_steps=2)\n    loss wgan_gp(5.0)\n    discriminator_optimizer adam(lr=0.0001, betas=[0.0, 0.9])\n"
        "    clip_grad 1.0\n    epochs 2",
    ),
    "hinge_uniform_augment_steps": (
        "random_flip",
        'task gan(noise="uniform", samples=10)\n    loss hinge\n    steps 7',
    ),
}


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(GAN_CASES))
def test_gans_train_to_the_numbers_of_netspec_run(case: str, data: Path, tmp_path: Path) -> None:
    """Both losses every epoch, each network's weights: the penalty, d_steps, clipping, noise, augmentation."""
    spec = tmp_path / "gan.net"
    spec.write_text(GAN_NET % GAN_CASES[case], encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    equivalence(spec, [], data, work)
    assert_ruff_clean(work / "gan.py")
    rows = metrics(work / "script")
    assert list(rows[0]) == ["epoch", "d_loss", "g_loss", "lr"] and len(rows) == 2


@pytest.mark.torch
def test_a_conditional_wgan_gp_script_trains_to_the_numbers_of_netspec_run(tmp_path: Path) -> None:
    """The gradient penalty of a conditional GAN interpolates the labelled inputs, in both."""
    if not DATA:
        pytest.skip("needs NETSPEC_DATA")
    overrides = ["train.loss=wgan_gp", "train.epochs=1", "dataset.limit=256"]
    equivalence(ROOT / "specs" / "cgan.net", overrides, DATA, tmp_path)
    assert "gradient_penalty(discriminator, real_in, fake_in)" in (tmp_path / "cgan.py").read_text()


@pytest.mark.torch
def test_a_resumed_gan_script_run_ends_where_an_uninterrupted_one_does(data: Path, tmp_path: Path) -> None:
    """d_steps=2 over 5 batches an epoch: the generator's steps follow the run's step count across the resume."""
    spec = tmp_path / "gan.net"
    spec.write_text(GAN_NET % GAN_CASES["wgan_gp_d_steps_clip"], encoding="utf-8")
    script = tmp_path / "gan.py"
    script.write_text(emit.emit(load(str(spec)), spec="gan"), encoding="utf-8")
    root = ("--data-dir", str(data))
    straight = run_script(script, *root, "--out", str(tmp_path / "straight"), "--epochs", "3", cwd=tmp_path)
    first = run_script(script, *root, "--out", str(tmp_path / "resumed"), "--epochs", "1", cwd=tmp_path)
    second = run_script(script, *root, "--resume", str(tmp_path / "resumed"), "--epochs", "3", cwd=tmp_path)
    assert straight.returncode == first.returncode == second.returncode == 0, second.stderr
    assert metrics(tmp_path / "straight") == metrics(tmp_path / "resumed") and len(metrics(tmp_path / "resumed")) == 3


def test_a_gan_script_copies_its_losses_and_noise_and_nothing_else() -> None:
    text = emit.emit(program_of(GAN_NET % GAN_CASES["bce_smoothing_validation"]), spec="gan")
    names = top_level_names(text)
    assert {"bce_discriminator_loss", "bce_generator_loss", "normal_noise", "G", "D", "save_samples"} <= names
    assert not names & {"gradient_penalty", "uniform_noise", "Meter", "evaluate", "EVAL_BATCH_SIZE", "D_STEPS"}
    assert "# (1) Update D network" in text and "# (2) Update G network" in text
    assert "d_loss = bce_discriminator_loss(real_score, fake_score, smoothing=0.1)" in text
    wgan = emit.emit(program_of(GAN_NET % GAN_CASES["wgan_gp_d_steps_clip"]), spec="gan")
    assert {"gradient_penalty", "wasserstein_discriminator_loss", "D_STEPS"} <= top_level_names(wgan)
    assert "bce_generator_loss" not in wgan and "d_loss + 5.0 * gradient_penalty(" in wgan
