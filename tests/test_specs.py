"""The example specs, the IR, summary, overrides, docs and the command line contracts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netspec.cli import main
from netspec.ir.nodes import Program
from netspec.ir.pipeline import compile_file, compile_text, load  # the IR; netspec.load gives a Spec
from netspec.tools.summary import summary_json, summary_text

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_checks_clean(path: Path) -> None:
    result = compile_file(str(path))
    assert result.ok, [d.message for d in result.diagnostics]
    assert result.diagnostics == []


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_begins_with_a_comment_saying_how_to_run_it(path: Path) -> None:
    head = path.read_text().splitlines()[:4]
    assert head[0].startswith("# ") and any("netspec" in line for line in head)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_ir_round_trips_through_json(path: Path) -> None:
    program = load(str(path))
    again = Program.model_validate_json(program.model_dump_json())
    assert again == program
    assert again.model_dump_json() == program.model_dump_json()


def test_lenet_parameters_and_shapes() -> None:
    data = summary_json(load(str(ROOT / "specs/mnist.net")))
    net = data["networks"][0]
    assert (net["name"], net["input"], net["output"], net["params"]) == ("LeNet", [1, 28, 28], [10], 431_080)
    assert [layer["kind"] for layer in net["layers"]] == [
        "conv2d",
        "relu",
        "maxpool",
        "conv2d",
        "relu",
        "maxpool",
        "flatten",
        "dense",
        "relu",
        "dense",
    ]
    assert [layer["output_shape"] for layer in net["layers"]][:3] == [[20, 24, 24], [20, 24, 24], [20, 12, 12]]
    assert [layer["params"] for layer in net["layers"] if layer["params"]] == [520, 25_050, 400_500, 5_010]


def test_mlp_parameters() -> None:
    assert load(str(ROOT / "specs/mnist_mlp.net")).networks[0].params == 784 * 100 + 100 + 100 * 10 + 10


def test_summary_json_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(ROOT / "specs/mnist.net"), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["networks"][0]["params"] == 431_080
    assert set(data["networks"][0]["layers"][0]) == {"kind", "line", "output_shape", "params"}


def test_summary_text_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(ROOT / "specs/resnet_cifar.net")]) == 0
    out = capsys.readouterr().out
    assert "network ResNet" in out and "Total params: 815,946" in out and "residual" in out


def test_summary_names_a_gans_generator_and_discriminator() -> None:
    gan = compile_text(
        "network G {\n    input [4]\n    dense(2)\n}\nnetwork D {\n    input [2]\n    dense(1)\n}\n"
        "dataset d {\n    source arithmetic\n}\n"
        "train {\n    generator G\n    discriminator D\n    loss hinge\n    optimizer adam\n    epochs 1\n}\n"
    ).program
    assert gan is not None
    text = summary_text(gan)
    assert "network G, the generator: input [4] -> output [2]" in text
    assert "network D, the discriminator: input [2] -> output [1]" in text
    assert text.endswith("Trains a GAN: generator G, discriminator D; 13 parameters in all")
    data = summary_json(gan)
    assert data["task"] == "gan" and [n["role"] for n in data["networks"]] == ["generator", "discriminator"]
    lenet = summary_json(load(str(ROOT / "specs/mnist.net")))
    assert lenet["task"] == "supervised" and lenet["networks"][0]["role"] == "model"


# --- language features ------------------------------------------------------------------

BASE = """
dataset d {{
    source arithmetic
}}
train {{
    loss mse
    optimizer sgd
    epochs 1
}}
network N {{
    input [2]
{body}
}}
"""


def _net(body: str, pre: str = "") -> object:
    result = compile_text(pre + BASE.format(body=body))
    assert result.ok, [(d.line, d.message) for d in result.diagnostics]
    assert result.program is not None
    return result.program.networks[0]


def test_constants_and_arithmetic() -> None:
    net = _net("    dense(w * 2 + 1) -> relu\n    dense((w - 4) // 2)\n    dense(1)", "let w = 8\n")
    assert [s.output_shape for s in net.steps] == [(17,), (17,), (2,), (1,)]  # type: ignore[attr-defined]


def test_blocks_repeat_residual() -> None:
    pre = "block MLP(width, depth=2) {\n    repeat depth {\n        dense(width) -> relu\n    }\n}\n"
    net = _net("    MLP(8)\n    residual {\n        MLP(8, depth=1)\n    }\n    dense(1)", pre)
    assert net.params == (2 * 8 + 8) + (8 * 8 + 8) + (8 * 8 + 8) + (8 + 1)  # type: ignore[attr-defined]
    kinds = [s.kind for s in net.steps]  # type: ignore[attr-defined]
    assert kinds == ["block", "residual", "dense"]


def test_overrides_apply_before_checking() -> None:
    path = str(ROOT / "specs/mnist.net")
    program = load(path, ["train.epochs=2", "dataset.batch=128", "train.optimizer=adam(lr=1e-4)"])
    assert program.train and program.dataset
    assert (program.train.epochs, program.dataset.batch, program.train.optimizer.kind) == (2, 128, "adam")
    assert program.train.optimizer.lr == 1e-4


def test_override_of_a_constant() -> None:
    program = load(str(ROOT / "specs/addition.net"), ["hidden=16"])
    assert program.networks[0].steps[0].output_shape == (16,)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=abc", "`epochs` must be a positive integer"),
        ("train.epochs=-1", "`epochs` must be a positive integer"),
        ("train.epoch=2", "unknown key `epoch`"),
        ("trian.epochs=2", "cannot override `trian.epochs`"),
        ("widht=3", "no constant `widht`"),
        ("train.epochs=(", "unexpected"),
        ("nonsense", "an override reads"),
        ("train.epochs=3; epochs 5", "an override sets one value"),
        ("train.epochs=3; seed 1", "an override sets one value"),
    ],
)
def test_bad_overrides_point_into_the_override(override: str, message: str) -> None:
    result = compile_file(str(ROOT / "specs/mnist.net"), [override])
    assert not result.ok
    found = [d for d in result.diagnostics if message in d.message]
    assert found, [d.message for d in result.diagnostics]
    assert found[0].file == "--set" and found[0].origin == override
    assert 1 <= found[0].column <= len(override) + 1


def test_an_override_of_epochs_or_steps_replaces_the_other() -> None:
    path = str(ROOT / "specs/mnist.net")
    program = load(path, ["train.steps=200"])
    assert program.train and (program.train.epochs, program.train.steps) == (None, 200)
    program = load(path, ["train.steps=200", "train.epochs=2"])
    assert program.train and (program.train.epochs, program.train.steps) == (2, None)


def test_an_override_of_none_removes_the_key() -> None:
    path = str(ROOT / "specs/mnist.net")
    program = load(path, ["train.epochs=none", "train.steps=50"])
    assert program.train and (program.train.epochs, program.train.steps) == (None, 50)
    program = load(path, ["dataset.limit=600", "dataset.limit=none"])
    assert program.dataset and program.dataset.limit is None


def test_an_override_of_a_constant_is_one_value() -> None:
    result = compile_file(str(ROOT / "specs/addition.net"), ["hidden=16; let extra = 2"])
    assert not result.ok and any("one value" in d.message for d in result.diagnostics)


def test_errors_are_all_reported_in_one_pass() -> None:
    text = "network A {\n    input [4]\n    dense(2, bais=true) -> rleu\n    dropuot(0.1)\n}\n"
    codes = [d.code for d in compile_text(text).diagnostics if d.severity == "error"]
    assert codes.count("NS010") == 2 and codes.count("NS011") == 1


def test_syntax_error_recovery_reports_later_errors() -> None:
    text = "network A {\n    input [4]\n    dense(2 3)\n    dense(4) relu\n    rleu\n}\n"
    diags = compile_text(text).diagnostics
    assert [d.line for d in diags if d.severity == "error"] == [3, 4, 5]


def test_warning_for_softmax_before_cross_entropy() -> None:
    text = (ROOT / "specs/mnist.net").read_text().replace("dense(10)\n", "dense(10) -> softmax\n")
    result = compile_text(text)
    assert result.ok
    assert [d.code for d in result.diagnostics] == ["NS101"]


def test_memory_guard_is_configurable() -> None:
    from netspec.ir.check import CheckOptions

    text = (ROOT / "specs/mnist.net").read_text()
    assert compile_text(text, options=CheckOptions(max_memory=1 << 30)).ok
    small = compile_text(text, options=CheckOptions(max_memory=1 << 20))
    assert [d.code for d in small.diagnostics] == ["NS060"]
    assert "over the 1.0 MiB limit" in small.diagnostics[0].message


def test_memory_estimate_counts_the_optimizer_state() -> None:
    from netspec.ir.checks.memory import estimate
    from netspec.registry import OPTIMIZERS
    from netspec.registry.optimizers import SGD

    copies = {name: cls().state_copies() for name, cls in OPTIMIZERS.entries.items()}
    assert copies == {"sgd": 0, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
    assert SGD(momentum=0.9).state_copies() == 1
    program = load(str(ROOT / "specs/mnist.net"), ["train.optimizer=adam(lr=1e-3)"])
    net = program.networks[0]
    weights, _, batch = estimate(net, program.train, program.dataset)
    assert (weights, batch) == (net.params * 4 * (2 + 2), 64)  # weights, gradients and Adam's two moments


def test_top_k_needs_fewer_than_the_classes() -> None:
    text = (ROOT / "specs/mnist.net").read_text().replace("metrics accuracy, precision, recall", "metrics top_k(20)")
    diags = compile_text(text).diagnostics
    assert [(d.code, d.message) for d in diags] == [
        ("NS051", "top_k with k=20 needs more than the 10 classes the network scores")
    ]
    assert compile_text(text.replace("top_k(20)", "top_k(5)")).ok


@pytest.mark.parametrize(
    ("old", "new", "code", "message"),
    [
        (
            "    seed 42",
            "    seed 42\n    early_stopping 3",
            "NS032",
            "`early_stopping` takes arguments in parentheses",
        ),
        ("metrics accuracy, precision, recall", "metrics", "NS032", "`metrics` needs at least one metric"),
        ("    source mnist\n", "", "NS033", "the dataset section needs a `source`"),
        ("loss cross_entropy", "loss(cross_entropy)", "NS032", "write `loss NAME(...)`, not `loss(...)`"),
        ("loss cross_entropy", "loss", "NS032", "`loss` needs a loss"),
        ("loss cross_entropy", "loss cross_entrop", "NS010", "unknown loss `cross_entrop`"),
        ("    batch 64", "    batch 64\n    batch 32", "NS031", "`batch` is given twice"),
        ("    batch 64", "    batch(64)", "NS032", "`batch` takes a value, written without parentheses"),
        ("model LeNet", "model LeNt", "NS020", "unknown network `LeNt`"),
        ("    seed 42", "    seeds 42", "NS030", "unknown key `seeds` in the train section"),
        ("normalize(mean=0.1307, std=0.3081)", "normalize(mean=0.1, sdt=1)", "NS011", "has no argument `sdt`"),
        ("optimizer sgd(lr=0.01, momentum=0.9)", "optimizer", "NS032", "`optimizer` needs an optimizer"),
        ("optimizer sgd(", "optimizer 3 + sgd(", "NS032", "`optimizer` needs an optimizer name, got"),
        ("    seed 42", "    seed 42\n    early_stopping(patiense=3)", "NS011", "`early_stopping` has no argument"),
        (
            "normalize(mean=0.1307, std=0.3081)",
            "transforms normalize",
            "NS030",
            "`transforms` is not written as a key: each transform is a key of its own",
        ),
    ],
)
def test_section_entries_are_read_by_their_form(old: str, new: str, code: str, message: str) -> None:
    text = (ROOT / "specs/mnist.net").read_text()
    assert old in text
    diags = compile_text(text.replace(old, new)).diagnostics
    assert any(d.code == code and message in d.message for d in diags), [(d.code, d.message) for d in diags]
    assert not any(d.message.startswith(" ") for d in diags)


def test_the_section_schema_decides_how_each_key_is_read() -> None:
    from netspec.ir.check import PASSES
    from netspec.ir.checks.forms import READERS
    from netspec.ir.sections import SECTIONS

    for section in SECTIONS.values():
        for key in section.keys.values():
            assert key.form in READERS
            assert not key.field.is_required() or key.form == "network" or key.missing(section.kind)
    assert SECTIONS["train"].keys["optimizer"].type_text() == "an optimizer"
    assert SECTIONS["train"].keys["metrics"].type_text() == "a metric list"
    modules = [p.__module__.rpartition(".")[2] for p in PASSES]
    assert modules == ["tuning", "declare", "networks", "sections", "cross", "tuning", "memory"]


# --- command line contracts ---------------------------------------------------------------


def test_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network A {\n    input [4]\n    dense(-1)\n}\n")
    assert main(["check", str(ROOT / "specs/mnist.net")]) == 0
    assert main(["check", str(bad)]) == 1
    assert main(["check", str(tmp_path / "missing.net")]) == 2
    err = capsys.readouterr().err
    assert "missing.net" in err and "Traceback" not in err


def test_check_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.net"
    bad.write_text("network A {\n    input [4]\n    dense(-1)\n}\n")
    assert main(["check", str(bad), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr().out)
    keys = {"file", "line", "column", "end_line", "end_column", "severity", "code", "message", "hint"}
    assert all(set(d) == keys for d in data)
    errors = [d for d in data if d["severity"] == "error"]
    assert errors[0]["line"] == 3 and errors[0]["column"] == 11 and errors[0]["code"] == "NS015"


def test_fmt_check_and_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = tmp_path / "m.net"
    messy.write_text("network A{input [4]\n  dense(2)->relu # keep me\n}\n")
    assert main(["fmt", "--check", str(messy)]) == 1
    assert main(["fmt", "--write", str(messy)]) == 0
    assert messy.read_text() == "network A {\n    input [4]\n    dense(2) -> relu  # keep me\n}\n"
    assert main(["fmt", "--check", str(messy)]) == 0
    assert main(["fmt", "--check", *map(str, SPECS)]) == 0


def test_schema_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "Program" and "Conv2d" in schema["$defs"]


@pytest.mark.parametrize("command", ["check", "summary", "fmt", "schema", "docs"])
def test_help_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "examples:" in capsys.readouterr().out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("netspec ")


def test_language_reference_is_fresh() -> None:
    from netspec.tools.docs import update

    text = (ROOT / "docs/language.md").read_text()
    assert update(text) == text, "docs/language.md is stale: run `make docs`"


def test_reference_covers_every_registry_entry() -> None:
    from netspec.registry import LAYERS, LOGGERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TASKS, TRANSFORMS
    from netspec.registry.search import PRUNERS, SAMPLERS, SEARCH
    from netspec.tools.docs import reference

    text = reference()
    families = (LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TASKS, TRANSFORMS, SEARCH, SAMPLERS, PRUNERS)
    families += (LOGGERS,)
    for registry in families:
        for name in registry.names():
            assert f"### `{name}`" in text


def test_registry_has_the_canonical_names() -> None:
    from netspec.registry import LAYERS, LOSSES, METRICS, OPTIMIZERS, SCHEDULES, SOURCES, TASKS, TRANSFORMS

    assert set(LAYERS.names()) == set(
        [
            "dense",
            "conv1d",
            "conv2d",
            "conv_transpose2d",
            "maxpool",
            "avgpool",
            "global_avgpool",
            "flatten",
            "reshape",
            "dropout",
            "batchnorm",
            "layernorm",
            "minibatch_stddev",
            "embedding",
            "rnn",
            "lstm",
            "gru",
            "attention",
            "transformer_encoder",
            "positional_embedding",
            "pool",
            "permute",
            "upsample",
            "relu",
            "leaky_relu",
            "gelu",
            "sigmoid",
            "tanh",
            "softmax",
            "log_softmax",
            "elu",
            "silu",
        ]
    )
    assert LOSSES.names() == [
        "cross_entropy",
        "nll",
        "mse",
        "l1",
        "huber",
        "bce",
        "bce_logits",
        "gan_bce",
        "hinge",
        "wgan_gp",
    ]
    assert TASKS.names() == ["supervised", "gan"]
    assert OPTIMIZERS.names() == ["sgd", "adagrad", "rmsprop", "adam", "adamw"]
    assert SCHEDULES.names() == ["step", "cosine", "onecycle", "warmup", "warmup_cosine", "plateau"]
    assert METRICS.names() == ["accuracy", "top_k", "precision", "recall", "f1", "mse", "mae"]
    assert SOURCES.names() == [
        "mnist",
        "fashion_mnist",
        "cifar10",
        "csv",
        "npz",
        "image_folder",
        "text",
        "arithmetic",
        "ts",
    ]
    assert TRANSFORMS.names() == [
        "normalize",
        "standardize",
        "random_flip",
        "random_crop",
        "random_rotation",
        "random_shift",
    ]
    from netspec.registry.search import PRUNERS, SAMPLERS, SEARCH

    assert SEARCH.names() == ["uniform", "loguniform", "int_uniform", "choice"]
    assert SAMPLERS.names() == ["tpe", "random"]
    assert PRUNERS.names() == ["median", "hyperband"]
    from netspec.registry import LOGGERS

    assert LOGGERS.names() == ["csv", "tensorboard", "mlflow"]


def test_a_closed_pipe_is_quiet() -> None:
    """`netspec schema | head -1`: no "Broken pipe" message, no traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "netspec", "schema"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 141
    assert err == ""


# --- bounded resources (issue 11) ------------------------------------------------------------------

MNIST = (ROOT / "specs" / "mnist.net").read_text(encoding="utf-8")


def _blocks(n: int, leaf: str = "relu", fan: int = 2) -> str:
    """B0 is `leaf`; each B{k} uses B{k-1} `fan` times; the network uses the last one."""
    uses = lambda k: " -> ".join([f"B{k - 1}"] * fan)  # noqa: E731
    blocks = f"block B0 {{ {leaf} }}\n" + "".join(f"block B{k} {{ {uses(k)} }}\n" for k in range(1, n))
    return blocks + MNIST.replace("    flatten\n", f"    flatten\n    B{n - 1}\n")


def _timed(text: str, **options: object) -> tuple[float, list[str], list[str]]:
    from time import perf_counter

    from netspec.ir.check import CheckOptions

    start = perf_counter()
    result = compile_text(text, options=CheckOptions(**options))  # type: ignore[arg-type]
    return perf_counter() - start, [d.code for d in result.diagnostics], [d.message for d in result.diagnostics]


def test_exponential_block_expansion_is_checked_once_per_use() -> None:
    seconds, codes, messages = _timed(_blocks(35))  # 2**34 layers written in 837 characters
    assert seconds < 5 and codes == ["NS060"], (seconds, messages)
    seconds, codes, messages = _timed(_blocks(18, leaf="reluu"))  # the error is reported once, not 2**17 times
    assert seconds < 5 and codes == ["NS010"] and "unknown layer `reluu`" in messages[0], (seconds, messages)
    assert "did you mean `relu`?" in compile_text(_blocks(18, leaf="reluu")).diagnostics[0].hint  # type: ignore[operator]


def test_expansion_work_is_bounded_when_blocks_recurse() -> None:
    """A recursive block cannot be reused (its expansion depends on the uses around it): the work
    counter (failed calls included) bounds it instead."""
    n = 25
    blocks = "block B0 { reluu -> B0 -> B1 }\n" + "".join(
        f"block B{k} {{ B{k + 1} -> B{k + 1} }}\n" for k in range(1, n)
    )
    text = blocks + f"block B{n} {{ B0 -> B0 }}\n" + MNIST.replace("    flatten\n", "    flatten\n    B0\n")
    seconds, codes, messages = _timed(text)
    assert seconds < 20 and {"NS010", "NS022", "NS060"} <= set(codes), (seconds, messages)
    assert any("block `B0` uses itself through `B1`, `B2`, `B3`, 22 more" in m for m in messages), messages


def test_a_long_chain_of_distinct_blocks_is_not_recursion() -> None:
    result = compile_text(_blocks(33, fan=1))
    assert result.ok, [d.message for d in result.diagnostics]
    deep = compile_text(_blocks(70, fan=1))  # deeper than the body limit: a located depth error, not recursion
    assert [d.code for d in deep.diagnostics] == ["NS022"]
    assert "nested more than 64 levels deep" in deep.diagnostics[0].message and deep.diagnostics[0].line > 1
    direct = compile_text("block A { B }\nblock B { A }\n" + MNIST.replace("    flatten\n", "    flatten\n    A\n"))
    assert any("block `A` uses itself through `B`" in d.message for d in direct.diagnostics)


def test_a_check_past_its_time_limit_says_so_and_cancellation_stops_it() -> None:
    import threading

    from netspec.ir.check import Cancelled, CheckOptions

    slow = MNIST.replace("    flatten\n", "    flatten\n    repeat 49000 { dense(4) -> relu }\n")
    seconds, codes, messages = _timed(slow, time_limit=0.1)
    assert seconds < 2 and codes == ["NS061"] and "checking stopped after 0.1 s" in messages[0], (seconds, messages)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        compile_text(slow, options=CheckOptions(cancel=cancel))


def test_a_byte_order_mark_is_accepted_and_positions_stay_right(tmp_path: Path) -> None:
    text = "let x = y\n" + MNIST
    path = tmp_path / "bom.net"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    with_bom, without = compile_file(str(path)), compile_text(text, str(path))
    assert [d.code for d in with_bom.diagnostics] == ["NS020"]
    assert with_bom.diagnostics == without.diagnostics  # same lines and columns as without the mark
    in_editor = compile_text("\ufeff" + text, str(path))  # an editor's buffer that kept it: columns of that text
    assert [(d.code, d.line, d.column) for d in in_editor.diagnostics] == [("NS020", 1, 10)]


def test_control_characters_are_escaped_in_text_output_not_in_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "a\x1b[2Jb.net"
    path.write_text(MNIST.replace("dense(10)", 'dense(10, bias="\\u001b[31mred")'), encoding="utf-8")
    assert main(["check", str(path), "--set", "train.loss=\x1b]0;x\x07"]) == 1
    out, _ = capsys.readouterr()
    assert "\x1b" not in out and "\x07" not in out, out
    assert "a\\x1b[2Jb.net" in out and "\\x1b[31mred" in out, out
    assert main(["check", str(path), "--format", "json"]) == 1
    data = json.loads(capsys.readouterr()[0])
    assert any("\x1b[31mred" in d["message"] for d in data) and "\x1b[2J" in data[0]["file"]


@pytest.mark.parametrize("command", ["check", "lsp"])
def test_a_400_digit_max_memory_is_a_usage_error(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = [command, "--max-memory", "9" * 400] + ([str(SPECS[0])] if command == "check" else [])
    assert main(args) == 2
    _, err = capsys.readouterr()
    assert err.startswith("netspec: error: size too large") and "Traceback" not in err, err


def test_what_check_accepts_at_the_deepest_nesting_emits() -> None:
    pytest.importorskip("torch")
    from netspec.emit import emit

    nested = "    residual {\n" * 40 + "    repeat 1 {\n" * 22 + "relu\n" + "}\n" * 62
    blocks = "block C0(k=1) { relu }\n" + "".join(
        f"block C{i}(k=1) {{ residual {{ C{i - 1}(k) }} }}\n" for i in range(1, 31)
    )
    for text in (
        MNIST.replace("    flatten\n", "    flatten\n" + nested),
        blocks + MNIST.replace("    flatten\n", "    flatten\n    residual { C30(2) }\n"),
    ):
        result = compile_text(text)
        assert result.ok and result.program is not None, [d.message for d in result.diagnostics]
        script = emit(result.program)
        compile(script, "<emitted>", "exec")  # Python parses it (nesting and indentation within its limits)
    too_deep = compile_text(
        MNIST.replace("    flatten\n", "    flatten\n" + "    residual {\n" * 64 + "relu\n" + "}\n" * 64)
    )
    assert [d.code for d in too_deep.diagnostics] in (["NS005"], ["NS022"]) and too_deep.diagnostics[0].line > 1


def test_a_misspelled_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["chek", "specs/mnist.net"])
    assert e.value.code == 2 and "did you mean `check`?" in capsys.readouterr().err
