"""`netspec graph`: the network as a diagram, in Mermaid (stdout, .md), DOT (.dot) and, through
Graphviz's real `dot`, SVG and PNG.

Golden Mermaid and DOT text of every spec in specs/ live in tests/golden/graph/ (`make golden`
rewrites them). The SVG that `dot` draws is read back as XML: each layer's kind and output shape
must be in it. A property test puts random names and strings into specs: the Mermaid must pass
a structural check and `dot` must read the DOT without a warning. Torch-free, like `summary`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as hs

from netspec.cli import main
from netspec.ir import nodes as ir
from netspec.ir.pipeline import compile_file, compile_text
from netspec.language.diagnostics import UsageError
from netspec.language.syntax import KEYWORDS
from netspec.registry import LAYERS
from netspec.registry.base import fmt_shape, format_value
from netspec.tools import graph_dot, graph_mermaid
from netspec.tools.graph import MAX_VALUE, diagram, printable

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.net"))
GOLDEN = ROOT / "tests" / "golden" / "graph"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
DOT = shutil.which("dot")
needs_dot = pytest.mark.skipif(DOT is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")


def program(path: Path) -> ir.Program:
    result = compile_file(str(path), [])
    assert result.program is not None, result.diagnostics
    return result.program


def svg_texts(svg: bytes) -> list[str]:
    """The text of every <text> element of an SVG, as a reader sees it."""
    root = ET.fromstring(svg)
    return [el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text")]


# --- a structural check of Mermaid flowchart text -------------------------------------------------

ID = r"[A-Za-z][A-Za-z0-9_]*"
LABEL = r'"([^"]*)"'
NODE = re.compile(rf"({ID})(?:\(\[{LABEL}\]\)|\(\({LABEL}\)\)|\[\({LABEL}\)\]|\[{LABEL}\]):::(\w+)")
SUBGRAPH = re.compile(rf"subgraph ({ID})\[{LABEL}\]")
EDGE = re.compile(rf"({ID}) (?:-->|-\.->|==>)(?:\|{LABEL}\|)? ({ID})")
STYLE = re.compile(rf"(?:style ({ID})|classDef (\w+)) [a-z-]+:[#\w .]+(?:,[a-z-]+:[#\w .]+)*")
RESERVED = {"end", "graph", "subgraph", "flowchart", "style", "classDef", "class", "click", "direction"}


def check_label(label: str) -> None:
    """Inside a quoted label: nothing Mermaid reads as syntax, only entity codes and <br/>."""
    text = label.replace("<br/>", "")
    assert not set(text) & set('"<>`|'), label
    assert not any(ord(c) < 32 for c in text), label
    assert re.fullmatch(r"(?:[^#]|#(?:[a-z]+|\d+);)*", text), label


def check_mermaid(text: str) -> dict[str, list[str]]:
    """Every line a known statement, ids safe and declared once, edges between declared nodes,
    subgraphs closed. Returns the ids of nodes, subgraphs and edges (`tail head`)."""
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    seen: dict[str, list[str]] = {"nodes": [], "subgraphs": [], "edges": [], "labels": []}
    depth = 0
    for line in lines[1:]:
        s = line.strip()
        if s == "end":
            depth -= 1
            assert depth >= 0, line
        elif s == "direction TB":
            assert depth > 0
        elif m := SUBGRAPH.fullmatch(s):
            depth += 1
            seen["subgraphs"].append(m.group(1))
            seen["labels"].append(m.group(2))
        elif m := NODE.fullmatch(s):
            seen["nodes"].append(m.group(1))
            seen["labels"].append(next(g for g in m.groups()[1:5] if g is not None))
        elif m := EDGE.fullmatch(s):
            seen["edges"].append(f"{m.group(1)} {m.group(3)}")
            seen["labels"].append(m.group(2) or "")
        else:
            assert STYLE.fullmatch(s), f"not a Mermaid statement: {line!r}"
    assert depth == 0, "a subgraph is not closed"
    ids = seen["nodes"] + seen["subgraphs"]
    assert len(ids) == len(set(ids)) and not set(ids) & RESERVED
    for edge in seen["edges"]:
        assert set(edge.split()) <= set(seen["nodes"]), edge
    for label in seen["labels"]:
        check_label(label)
    return seen


NAMED = {"quot": '"', "lt": "<", "gt": ">", "amp": "&"}


def unescape(label: str) -> str:
    """A label's text as a reader sees it: entity codes decoded."""
    return re.sub(r"#(\w+);", lambda m: NAMED.get(m.group(1)) or chr(int(m.group(1))), label)


# --- every spec, every format ---------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_golden_mermaid_and_dot_of_every_spec(spec: Path) -> None:
    d = diagram(program(spec))
    for suffix, text in ((".mmd", graph_mermaid.mermaid(d)), (".dot", graph_dot.dot(d))):
        golden = GOLDEN / (spec.stem + suffix)
        if UPDATE:
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
            continue
        assert golden.exists(), f"{golden.name} is missing; run `make golden`"
        assert text == golden.read_text(encoding="utf-8"), f"{golden.name} differs; if intended, `make golden`"


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_gives_mermaid_that_passes_the_structural_check(spec: Path) -> None:
    prog = program(spec)
    seen = check_mermaid(graph_mermaid.mermaid(diagram(prog)))
    labels = " ".join(map(unescape, seen["labels"]))
    for net in prog.networks:
        assert f"network {net.name}" in labels
        for layer in ir.leaves(net.steps):
            assert layer.kind in labels and fmt_shape(layer.output_shape) in labels


@needs_dot
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_dot_draws_every_spec_with_each_layers_kind_and_output_shape(spec: Path) -> None:
    prog = program(spec)
    texts = svg_texts(graph_dot.render(graph_dot.dot(diagram(prog)), "svg"))
    for net in prog.networks:
        assert any(t.startswith(f"network {net.name}") for t in texts), texts
        assert any(t.startswith(fmt_shape(net.input_shape)) for t in texts)
        for layer in ir.leaves(net.steps):
            assert layer.kind in texts, layer.kind
            assert any(t.startswith(fmt_shape(layer.output_shape)) for t in texts), layer


# --- what the pictures of resnet_cifar and gan show -----------------------------------------------


def test_resnet_has_repeat_clusters_and_residual_skip_edges_with_their_merge() -> None:
    text = graph_mermaid.mermaid(diagram(program(ROOT / "specs" / "resnet_cifar.net")))
    seen = check_mermaid(text)
    assert text.count('["repeat ×2"]') == 2  # each repeat drawn once, labelled with its count
    assert text.count('["residual: x + f(x)"]') == 2
    assert text.count('["ConvBN(channels=128, stride=2)"]') == 1
    skips = re.findall(r"(n\d+) -\.->\|\"x\"\| (n\d+)", text)
    assert len(skips) == 2
    for tail, head in skips:  # from the residual's input to its `+`, which the body also reaches
        assert re.search(rf'{head}\(\("\+"\)\)', text) and f"{tail} n" in " ".join(seen["edges"])
        assert sum(e.endswith(f" {head}") for e in seen["edges"]) == 2


@needs_dot
def test_resnet_svg_shows_the_clusters_and_the_skip_edges() -> None:
    dot_text = graph_dot.dot(diagram(program(ROOT / "specs" / "resnet_cifar.net")))
    assert dot_text.count("style=dashed") == 2
    texts = svg_texts(graph_dot.render(dot_text, "svg"))
    assert texts.count("repeat ×2") == 2 and texts.count("residual: x + f(x)") == 2
    assert texts.count("+") == 2 and texts.count(" x ") == 2  # the merges, the skip edges' labels
    assert "ConvBN(channels=64, stride=1)" in texts


def test_gan_has_both_networks_and_the_samples_between_them() -> None:
    prog = program(ROOT / "specs" / "gan.net")
    d = diagram(prog)
    text = graph_mermaid.mermaid(d)
    seen = check_mermaid(text)
    assert '["network Generator · 759,681 params"]' in text
    assert '["network Discriminator · 72,609 params"]' in text
    between = re.findall(r"(n\d+) ==>\|\"(fake samples|real samples)\"\| (n\d+)", text)
    assert len(between) == 2 and between[0][2] == between[1][2]  # both into the discriminator's input
    boxes = {b.id: b for b in d.boxes()}
    tanh, fake, data = boxes[between[0][0]], boxes[between[0][2]], boxes[between[1][0]]
    assert (tanh.title, tanh.shape) == ("tanh", "[1, 28, 28]") and fake.title == "input"
    assert fake.shape == "[1, 28, 28]" and (data.title, data.detail) == ("dataset", "mnist")
    assert len(seen["subgraphs"]) == 2


@needs_dot
def test_gan_svg_has_both_networks_and_the_edge_labels() -> None:
    texts = svg_texts(graph_dot.render(graph_dot.dot(diagram(program(ROOT / "specs" / "gan.net"))), "svg"))
    assert "network Generator · 759,681 params" in texts and "network Discriminator · 72,609 params" in texts
    assert " fake samples " in texts and " real samples " in texts


def test_a_repeat_whose_iterations_differ_is_drawn_iteration_by_iteration() -> None:
    text = "network N {\n    input [1, 12, 12]\n    repeat 2 {\n        conv2d(4, kernel=3) -> relu\n    }\n}\n"
    result = compile_text(text, "t.net")
    assert result.program is not None, result.diagnostics
    mermaid = graph_mermaid.mermaid(diagram(result.program))
    check_mermaid(mermaid)
    assert '["repeat ×2"]' in mermaid and '["iteration 1"]' in mermaid and '["iteration 2"]' in mermaid
    assert "[4, 10, 10]" in mermaid and "[4, 8, 8]" in mermaid


def test_long_floats_and_values_are_short_in_labels() -> None:
    text = graph_mermaid.mermaid(diagram(program(ROOT / "specs" / "shakespeare_gpt.net")))
    assert "proj_init=0.007071" in text and "0.00707106" not in text


def test_docs_show_the_current_diagrams_of_resnet_and_gan() -> None:
    doc = (ROOT / "docs" / "graph.md").read_text(encoding="utf-8")
    for spec in ("resnet_cifar", "gan"):
        text = graph_mermaid.mermaid(diagram(program(ROOT / "specs" / f"{spec}.net")))
        assert f"```mermaid\n{text}```" in doc, f"docs/graph.md has an old diagram of {spec}.net"


# --- the command ------------------------------------------------------------------------------------


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_without_output_it_prints_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["graph", str(ROOT / "specs" / "mnist.net")], capsys)
    assert code == 0 and err == ""
    check_mermaid(out)
    assert "conv2d(20, kernel=5)<br/>[20, 24, 24]" in out
    assert "==>" not in out and ":::data" not in out  # one network: nothing passes between networks


def test_markdown_has_a_mermaid_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net.md"
    assert run(["graph", str(ROOT / "specs" / "gan.net"), "-o", str(out)], capsys) == (0, "", "")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# The network of gan.net\n\n```mermaid\nflowchart TD\n") and text.endswith("```\n")
    check_mermaid(text.split("```mermaid\n")[1].split("```")[0])


def test_dot_output_is_the_dot_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "net.dot"
    assert run(["graph", str(ROOT / "specs" / "gan.net"), "-o", str(out)], capsys)[0] == 0
    assert out.read_text(encoding="utf-8") == (GOLDEN / "gan.dot").read_text(encoding="utf-8")


@needs_dot
def test_svg_and_png_are_drawn_by_dot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    svg, png = tmp_path / "net.svg", tmp_path / "NET.PNG"
    spec = str(ROOT / "specs" / "resnet_cifar.net")
    assert run(["graph", spec, "-o", str(svg)], capsys) == (0, "", "")
    assert run(["graph", spec, "-o", str(png)], capsys) == (0, "", "")
    assert "global_avgpool" in svg_texts(svg.read_bytes())
    head = png.read_bytes()
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert 400 < width < 1200 and 1000 < height < 3000  # a page, not a poster
    assert sorted(p.name for p in tmp_path.iterdir()) == ["NET.PNG", "net.svg"]  # no temporary left


def test_overrides_are_drawn(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["graph", str(ROOT / "specs" / "resnet_cifar.net"), "--set", "width=16"], capsys)
    assert code == 0 and "conv2d(16, kernel=3, stride=1, padding=1, bias=false)<br/>[16, 32, 32]" in out


def test_only_one_network(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["graph", str(ROOT / "specs" / "gan.net"), "--network", "Generator"], capsys)
    assert code == 0 and "network Generator" in out and "Discriminator" not in out and "samples" not in out


def test_an_unknown_network_is_a_usage_error_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["graph", str(ROOT / "specs" / "gan.net"), "--network", "Generater"], capsys)
    assert (code, out) == (2, "")
    assert err.startswith("netspec: error: the spec has no network `Generater`; did you mean `Generator`?")


def test_an_unknown_suffix_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["graph", str(ROOT / "specs" / "mnist.net"), "-o", str(tmp_path / "net.pdf")], capsys)
    assert (code, out) == (2, "") and "-o takes a file ending in .md, .dot, .svg, .png" in err
    assert list(tmp_path.iterdir()) == []


def test_a_spec_with_errors_gives_its_located_diagnostics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "bad.net"
    spec.write_text("network N {\n    input [1, 28, 28]\n    conv2d(8, kernel=3) -> rleu\n}\n", encoding="utf-8")
    code, out, err = run(["graph", str(spec), "-o", str(tmp_path / "net.svg")], capsys)
    assert (code, out) == (1, "")
    assert "bad.net:3:28: error[NS010]: unknown layer `rleu`" in err and "did you mean `relu`?" in err
    assert not (tmp_path / "net.svg").exists()


def test_a_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["graph", str(tmp_path / "nope.net")], capsys)
    assert (code, out) == (2, "") and err.startswith("netspec: error: ") and "nope.net" in err


def test_without_dot_svg_is_refused_and_markdown_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` on the PATH
    spec = str(ROOT / "specs" / "mnist.net")
    code, out, err = run(["graph", spec, "-o", str(tmp_path / "net.svg")], capsys)
    assert (code, out) == (2, "")
    assert err == (
        "netspec: error: drawing SVG needs Graphviz's dot program (apt-get install graphviz / brew install "
        "graphviz); use -o FILE.md for Mermaid, which needs nothing\n"
    )
    assert run(["graph", spec, "-o", str(tmp_path / "net.md")], capsys)[0] == 0


@needs_dot
def test_dot_that_takes_too_long_is_stopped() -> None:
    with pytest.raises(UsageError, match=r"Graphviz's dot took longer than 1e-06 s"):
        graph_dot.render("digraph { a -> b }\n", "svg", timeout=1e-6)


def test_the_command_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys; from netspec.cli import main; "
        f"assert main(['graph', {str(ROOT / 'specs' / 'resnet_cifar.net')!r}, '-o', {str(tmp_path / 'r.md')!r}]) == 0; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr


# --- no spec text breaks the output -----------------------------------------------------------------

RESERVED_NAMES = set(KEYWORDS) | set(LAYERS.names())
names = hs.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True).filter(lambda n: n not in RESERVED_NAMES)
strings = hs.text(hs.characters(codec="utf-8"), max_size=30)  # any character but lone surrogates
EXAMPLES = int(os.environ.get("NETSPEC_FUZZ_EXAMPLES", "60"))  # as tests/test_fuzz.py: raise it for a long hunt


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(net=names, block=names, param=names, value=strings, data=names)
@example(net="end", block="subgraph", param="graph", value='\\N \\G \\\\ "]>) end #quot; &amp; <b>x</b>', data="style")
def test_no_name_or_string_in_a_spec_breaks_the_mermaid_or_the_dot(
    net: str, block: str, param: str, value: str, data: str
) -> None:
    assume(len({net, block, param}) == 3)
    text = (
        f"block {block}({param}) {{\n    relu\n}}\n"
        f"network {net} {{\n    input [2]\n    {block}({json.dumps(value, ensure_ascii=False)})\n    dense(1)\n}}\n"
        f"dataset {data} {{\n    source arithmetic(samples=100)\n}}\n"
        f"train {{\n    model {net}\n    loss mse\n    optimizer adam\n    epochs 1\n}}\n"
    )
    prog = compile_text(text, "t.net").program
    assume(prog is not None)  # a name the spec cannot use there (a source's, a loss's) is an error
    assert prog is not None
    d = diagram(prog)
    seen = check_mermaid(graph_mermaid.mermaid(d))
    shown = [unescape(label) for label in seen["labels"]]
    assert f"network {net} · 3 params" in shown
    written = printable(format_value(value))  # the string as the spec writes it, control characters as spaces
    label = f"{block}({param}={written})" if len(written) <= MAX_VALUE else f"{block}({param}={written[:39]}…)"
    assert label in shown
    if DOT is not None:
        done = subprocess.run([DOT, "-Tsvg"], input=graph_dot.dot(d).encode(), capture_output=True, timeout=60)
        assert done.returncode == 0 and done.stderr == b"", done.stderr
        texts = svg_texts(done.stdout)
        assert f"network {net} · 3 params" in texts
        assert " ".join(label.split()) in [" ".join(t.split()) for t in texts]
