"""Stage 3b: `netspec emit` — a checked spec as one standalone PyTorch training script.

The script is rendered from Jinja2 templates in ``netspec/templates/<target>/``, one per
concern (model, data, training loop, command line). This module hands them validated IR
values and a few plain structures derived from them (the model as nested calls, the block
classes, the transforms in the order they apply), never Python source built from spec text:

- every value a template prints goes through a filter — ``lit`` (a Python literal, built
  here from ints, floats, bools, None, strings, tuples and lists and nothing else), ``ident``
  (a checked identifier), ``shape``, ``count`` or ``text`` (a comment- and docstring-safe
  rendering) — and the environment refuses anything printed without one;
- the only other source in a script is netspec's own: the functions and classes of
  netspec/verbatim/ that the spec uses, copied verbatim, so that
  `netspec run` and the script share one implementation of augmentation and metrics.

The output is formatted as ruff formats it with its default settings (88 columns), so
the templates decide line breaks the way ruff would: a call stays on one line when it fits,
and is otherwise split one argument per line with a trailing comma, which ruff keeps.
Adding a target means adding a folder of templates.
"""

from __future__ import annotations

import builtins
import keyword
from typing import Any

from markupsafe import Markup

from netspec import __version__
from netspec.emit.adversarial import adversarial_context
from netspec.emit.data import data_context
from netspec.emit.errors import EmitError
from netspec.emit.filters import environment, identifier, literal, text
from netspec.emit.model import Call, Classes, Param, step_call
from netspec.emit.training import training_context
from netspec.emit.verbatim import copied, definitions
from netspec.ir import nodes as ir

TARGETS = ("pytorch",)


# --- the script's context ------------------------------------------------------------------

# Every top-level name the templates may define or import, and the modules' classes:
# a network or block named like one of them is given another class name.
SCRIPT_NAMES = frozenset(
    {
        "argparse", "csv", "gzip", "hashlib", "io", "json", "math", "os", "platform", "re", "struct", "sys",
        "tarfile", "time", "urllib", "asdict", "dataclass", "field", "Path", "PurePosixPath", "np", "torch", "nn", "F",
        "save_file", "Image", "SPEC", "SEED", "EPOCHS", "STEPS", "BATCH_SIZE", "EVAL_BATCH_SIZE", "METRICS",
        "METRIC_ARGS", "DATA_FOLDER", "MIRRORS", "SHA256", "CIFAR_URL", "CIFAR_MD5", "CIFAR_FOLDER",
        "DATA_PATH", "criterion", "loss_fn", "download", "read_idx", "read_cifar", "load_data", "find_file",
        "read_csv", "hold_out", "to_tensor", "prepare_data", "State", "train_epoch", "evaluate", "epoch_row",
        "save_checkpoint", "load_checkpoint", "save_weights", "write_metrics", "write_json", "pick_device",
        "parse_args", "main", "IMAGE_SUFFIXES", "read_image", "addition_pairs", "autocast_dtype",
        "RUN_LENGTH_KEYS", "end_of_epoch", "check_finite", "Meter", "ImageFiles", "ImageError", "collate",
        "batches", "DataLoader", "Dataset", "SIZE", "TARGET", "DELIMITER", "X_NAME", "Y_NAME", "SEQ_LEN",
        "SAMPLES", "LOW", "HIGH", "RECORD", "TEST_FILE", "TRAIN_FILES", "fetch_cifar", "is_number", "zipfile",
        "workers", "write_atomic",
        "npz_inputs", "npz_targets", "char_windows", "cifar_records", "decode_image", "image_index",
        "folder_digest", "csv_rows", "csv_target", "TASK_TYPE", "ts_series", "ts_stack", "TRAIN_PATH", "TEST_PATH",
        "_ts_header", "_ts_row",
        "read_ts",  # verbatim/readers.py
        "LATENT", "CLASSES", "D_STEPS", "N_SAMPLES", "SAMPLES_SEED", "sample", "save_samples",  # a GAN's
        "HELD_OUT",
        "dist", "DistributedDataParallel", "RANK", "WORLD_SIZE", "join", "share", "add_up",  # --distributed
    }
)  # fmt: skip
NETSPEC_MODULES = (
    "Recurrent",
    "SelfAttention",
    "Encoder",
    "Residual",
    "PositionalEmbedding",
    "SequencePool",
    "Permute",
    "init_normal",
    "TiedLinear",
    "tie_weights",
    "WarmupCosine",
    "matrix_decay",
)


def emit(
    program: ir.Program,
    target: str = "pytorch",
    spec: str = "spec",
    script: str | None = None,
    distributed: bool = False,
) -> str:
    """The standalone training script of a checked program; `spec` names the spec (its file
    stem), `script` the file the script is written to (for its usage lines); `distributed`: a
    script that also trains data-parallel when torchrun starts it (as `netspec run --nproc`)."""
    if target not in TARGETS:
        raise EmitError(f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    if program.train is None or program.dataset is None:
        raise EmitError("a training script needs a `dataset` and a `train` section")
    for key in program.train.task.networks:
        if program.network(getattr(program.train, key)) is None:
            raise EmitError(f"the spec has no network `{getattr(program.train, key)}`")
    context = _context(program, spec, script or f"{spec}.py")
    if distributed:
        context.update(_distributed(program, context))
    loggers = ", ".join(lg.kind_name() for lg in program.train.log if lg.writer)  # a note: the script logs to CSV
    return (
        environment(target).get_template("script.py.j2").render({"distributed": False, "loggers": loggers, **context})
    )


def _distributed(program: ir.Program, context: dict[str, Any]) -> dict[str, Any]:
    """What a data-parallel script changes: the training loop calls the DDP wrapper, `ddp`."""
    if program.train is not None and len(program.train.task.networks) != 1:
        raise EmitError("--distributed: a data-parallel script trains one network, not a GAN's two")
    if context["stream"]:
        raise EmitError(
            "--distributed: the script's data-parallel training takes its batches from memory; "
            f"`{program.dataset.source.kind}` streams files (netspec run --nproc shards them)"  # type: ignore[union-attr]
        )
    train_call = context["train_call"]
    return {"distributed": True, "train_call": Call(train_call.func, [Param("ddp"), *train_call.args[1:]])}


def _context(program: ir.Program, spec: str, script: str) -> dict[str, Any]:
    """Everything the templates see: validated IR values and what is derived from them."""
    train, dataset = program.train, program.dataset
    assert train is not None and dataset is not None
    models = _model_context(program)
    data = data_context(dataset)
    training = TRAINERS[train.task.trainer](program, models.pop("network_classes"), data["augments"])
    used = models.pop("used_modules") | training.pop("used_modules")
    copies = _copied_context(data["transforms"], training["metric_funcs"], used, data["stream"], training["copies"])
    return {"netspec_version": __version__, "spec": spec, "script": script, **models, **data, **training, **copies}


def _supervised_context(program: ir.Program, classes: dict[str, str], augments: bool) -> dict[str, Any]:
    """The training of one model: its class, loss, optimizer, schedule and metrics."""
    train = program.train
    net = program.network(train.model) if train else None
    assert train is not None and net is not None
    training = training_context(train, net, augments)
    settings = {
        "title": classes[net.name],
        "model_class": classes[net.name],
        "evaluates": True,
        "trainer_settings": [],
        "pt_files": "model.pt",  # the weights without safetensors
    }
    return {**training, **settings, "used_modules": _training_modules(training), "copies": []}


def _training_modules(training: dict[str, Any]) -> set[str]:
    """netspec's own scheduler and parameter grouping that the script's training calls."""
    calls = [c for top in (training["optimizer_call"], training["scheduler_call"]) if top for c in top.calls()]
    return {c.func for c in calls if c.func in NETSPEC_MODULES}


def _model_context(program: ir.Program) -> dict[str, Any]:
    """A class per network and per reused block, and the netspec modules they call."""
    trees = [Call("nn.Sequential", [step_call(s) for s in n.steps]) for n in program.networks]
    spec_names = frozenset({n.name for n in program.networks} | {c.block for t in trees for c in t.calls() if c.block})
    reserved = set(SCRIPT_NAMES) | set(NETSPEC_MODULES) | set(definitions("adversarial"))  # a GAN's copies too
    classes = Classes(reserved | set(dir(builtins)) | set(keyword.kwlist), spec_names)
    classes.add_blocks(trees)
    model_classes = {n.name: classes.add_network(n, tree) for n, tree in zip(program.networks, trees)}
    calls = [c for cls in classes.classes for call in cls.body for c in call.calls()]
    return {
        "network_classes": {name: cls.name for name, cls in model_classes.items()},
        "classes": classes.classes,
        "used_modules": {c.func for c in calls if c.func in NETSPEC_MODULES}
        | ({"tie_weights"} if any(c.tied for c in classes.classes) else set()),
    }


def _copied_context(
    transforms: list[dict[str, Any]],
    metric_funcs: list[tuple[str, str]],
    used_modules: set[str],
    stream: bool,
    trainer_copies: list[Any],
) -> dict[str, Any]:
    """netspec's own augmentation, streaming, metric and module code that the script needs, copied
    (the trainer's own, a GAN's losses, copied already)."""
    stream_helpers = {"workers", "collate"} if stream else set()
    helpers = {f for t in transforms for f in t["functions"]} | {f for _, f in metric_funcs} | stream_helpers
    copied_data = copied("data", helpers)
    copied_metrics = copied("metrics", helpers, provided=frozenset({"Meter"}))  # the template's Meter is trimmed
    copied_modules = copied("modules", used_modules)
    missing = helpers - {d.name for d in copied_data + copied_metrics}
    if missing:
        raise EmitError(f"netspec/verbatim/ has no {', '.join(sorted(missing))}")
    uses = set().union(*(d.uses for d in copied_data + copied_metrics + copied_modules + trainer_copies))
    return {
        "modules_source": [Markup(d.source) for d in copied_modules],
        "data_helpers": [Markup(d.source) for d in copied_data],
        "metric_helpers": [Markup(d.source) for d in copied_metrics],
        "uses_F": "F" in uses,
        "uses_math": "math" in uses,
    }


TRAINERS = {"supervised": _supervised_context, "adversarial": adversarial_context}  # by the task's trainer

__all__ = ["TARGETS", "EmitError", "definitions", "emit", "identifier", "literal", "text"]
