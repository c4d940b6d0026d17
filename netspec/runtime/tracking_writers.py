"""The writers of the loggers that need a package: TensorBoard (torch.utils.tensorboard) and MLflow
(its client, on the tracking store). Each is imported only when a run uses it; py drives them."""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch

from netspec.language.files import write_atomic
from netspec.runtime import adversarial
from netspec.runtime.adversarial import undo
from netspec.runtime.rundir import State
from netspec.runtime.splits import batches

Row = dict[str, float]


# --- what both log -------------------------------------------------------------------------


def params(program: Any) -> dict[str, Any]:
    """The resolved spec as flat dotted keys: `train.optimizer.lr`, `dataset.batch`, `constants.hidden`,
    `networks.LeNet.params`; a list of entries as their names (`train.metrics`: "accuracy, top_k") and each
    entry's values under its name (`train.metrics.top_k.k`)."""
    plain = program.model_dump(mode="json", exclude={"train": {"log"}})
    out: dict[str, Any] = {}
    for section in ("constants", "dataset", "train", "tune"):
        values = plain.get(section) or {}
        _flatten({k: v for k, v in values.items() if (k, section) != ("kind", values.get("kind"))}, section, out)
    for net in plain.get("networks", []):
        out[f"networks.{net['name']}.params"] = net["params"]
    return out


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, v in value.items():
            if key != "span":
                _flatten(v, f"{prefix}.{key}", out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "kind" in v for v in value):
        out[prefix] = ", ".join(v["kind"] for v in value)
        for v in value:
            _flatten({k: x for k, x in v.items() if k != "kind"}, f"{prefix}.{v['kind']}", out)
    elif isinstance(value, list):
        out[prefix] = json.dumps(value)
    else:
        out[prefix] = "none" if value is None else value


def spec_text(out: Path, options: Any) -> str:
    """The spec as it was run (spec.net in the run directory, with its overrides)."""
    path = out / "spec.net"
    return path.read_text(encoding="utf-8") if path.is_file() else (options.source or "")


def experiment_name(options: Any) -> str:
    return str(options.spec_name)


def epoch_metrics(row: Row) -> Row:
    return {f"epoch/{k}": float(v) for k, v in row.items() if k != "epoch"}


def save_json(path: Path, body: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(body, indent=1) + "\n")


# --- TensorBoard ----------------------------------------------------------------------------


class TensorBoardWriter:
    """Event files in RUN/<dir>: scalars per step and epoch, the graph, images, the spec as text and hparams."""

    name = "tensorboard"

    def __init__(self, logger: Any, out: Path, exp: Any, state: State, options: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        resumed = state.step > 0
        # resumed: events past the checkpoint (logged before a crash) are purged, so no step counts twice
        self.w = SummaryWriter(str(out / logger.dir), purge_step=state.step + 1 if resumed else None)
        self.hparams = state.epoch == 0 and not resumed
        self.program = exp.program
        if not resumed:
            self._header(logger, out, exp, options)

    def _header(self, logger: Any, out: Path, exp: Any, options: Any) -> None:
        text = spec_text(out, options)
        self.w.add_text("spec", "\n".join("    " + line for line in text.splitlines()))  # a Markdown code block
        rows = "\n".join(f"| {k} | {v} |" for k, v in params(exp.program).items())
        self.w.add_text("params", "| parameter | value |\n|---|---|\n" + rows)
        with torch.random.fork_rng(devices=[]):  # tracing and sampling draw no number of the run's
            x = _first_inputs(exp, max(logger.images, 2))
            if logger.images and x is not None and _is_image(x):
                self.w.add_images("inputs", undo(x[: logger.images].float().cpu(), exp.data.at_eval), 0)
            if logger.graph:
                self._graph(exp, x, options)

    def _graph(self, exp: Any, x: torch.Tensor | None, options: Any) -> None:
        model, inputs = _graph_input(exp, x)
        if model is None:
            return
        was = model.training
        model.eval()  # no dropout draws, no BatchNorm statistics updated by the trace
        try:
            with warnings.catch_warnings():  # torch.jit.trace's deprecation and tracer warnings
                warnings.simplefilter("ignore")
                self.w.add_graph(model, inputs)
        except Exception as e:  # tracing fails on some models; the run goes on
            options.log(f"note: tensorboard: no graph of the model ({type(e).__name__}: {str(e)[:200]})")
        finally:
            model.train(was)

    def step(self, row: Row) -> None:
        step = int(row["step"])
        self.w.add_scalar("step/loss", row["loss"], step)
        self.w.add_scalar("step/lr", row["lr"], step)

    def epoch(self, exp: Any, state: State, row: Row) -> None:
        for tag, value in epoch_metrics(row).items():
            self.w.add_scalar(tag, value, state.epoch)
        if exp.trainer:  # a GAN: its fixed-noise samples after this epoch
            samples = exp.trainer.samples(exp)
            if _is_image(samples):
                self.w.add_images("samples", samples, state.epoch)
        if self.hparams:  # the HParams tab: the resolved values, and the epoch metrics' tags
            self._hparams(row)
        self.w.flush()

    def _hparams(self, row: Row) -> None:
        from torch.utils.tensorboard.summary import hparams

        values = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in params(self.program).items()}
        for summary in hparams(values, {tag: 0.0 for tag in epoch_metrics(row)}):
            self.w._get_file_writer().add_summary(summary)
        self.hparams = False

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        for metric, value in summary["test"].items():
            self.w.add_scalar(f"test/{metric}", value, summary["epochs"])

    def close(self, status: str) -> None:
        self.w.close()


def _first_inputs(exp: Any, n: int) -> torch.Tensor | None:
    """The first `n` training inputs, preprocessed as training sees them (not augmented)."""
    split = exp.data.train
    n = min(n, len(split))
    if n == 0:
        return None
    return next(iter(batches(split, torch.arange(n), n, exp.device)))[0]


def _is_image(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.shape[1] in (1, 3)


def _graph_input(exp: Any, x: torch.Tensor | None) -> tuple[Any, Any]:
    """The module to trace and its input: the model on a real batch; of a GAN, the generator on noise."""
    model = getattr(exp.model, "module", exp.model)  # under DDP
    model = getattr(model, "_orig_mod", model)  # under torch.compile
    if exp.trainer:
        trainer = exp.trainer
        noise = adversarial.generator_input(trainer.program, 2, torch.device("cpu"))  # the CPU's generator: forked
        return model["generator"], noise.to(exp.device)
    return (model, x) if x is not None else (None, None)


# --- MLflow ---------------------------------------------------------------------------------

RECORD = "mlflow.json"  # in the run directory: the store and run a resumed run logs into
FLUSH_STEPS, FLUSH_SECONDS = 500, 10.0
NOT_ARTIFACTS = ("checkpoint-", "state.json", RECORD, ".")  # resuming state; the checkpoint repeats the weights


def default_uri() -> str:
    """$MLFLOW_TRACKING_URI, else mlflow.db (SQLite) in the current directory, where `mlflow ui` finds it."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


class MLflowWriter:
    """One MLflow run per run directory: params, step and epoch metrics, test metrics, artifacts, status."""

    name = "mlflow"

    def __init__(self, logger: Any, out: Path, exp: Any, state: State, options: Any) -> None:
        from mlflow.tracking import MlflowClient

        for quiet in ("mlflow", "alembic"):  # no INFO lines about creating the store's tables
            logging.getLogger(quiet).setLevel(logging.WARNING)

        self.every, self.uri = logger.every, logger.uri or default_uri()
        self.client = MlflowClient(self.uri)
        self.buffer: list[Any] = []
        self.flushed = time.monotonic()
        saved = _saved_run(out, self.uri)
        self.run_id = saved or self._create(logger, out, exp, options)
        if saved:
            self.client.update_run(saved, status="RUNNING")
        self.last_step = _last_step(self.client, self.run_id, "step/loss")
        self.last_epoch = _last_step(self.client, self.run_id, "epoch/seconds")

    def _create(self, logger: Any, out: Path, exp: Any, options: Any) -> str:
        name = logger.experiment or experiment_name(options)
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else self.client.create_experiment(name, _artifacts(self.uri))
        tags = {"mlflow.source.name": str(options.spec_name), "netspec.run_dir": str(out.resolve())}
        run = self.client.create_run(experiment, run_name=out.name, tags=tags)
        save_json(out / RECORD, {"tracking_uri": self.uri, "run_id": run.info.run_id, "experiment": name})
        self._params(run.info.run_id, exp.program)
        return str(run.info.run_id)

    def _params(self, run_id: str, program: Any) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params(program).items()]
        for i in range(0, len(items), 100):  # the store's limit per batch
            self.client.log_batch(run_id, params=items[i : i + 100])

    def step(self, row: Row) -> None:
        step = int(row["step"])
        if step <= self.last_step or step % self.every:
            return
        self._add({"step/loss": row["loss"], "step/lr": row["lr"]}, step)
        if len(self.buffer) >= FLUSH_STEPS or time.monotonic() - self.flushed > FLUSH_SECONDS:
            self._flush()

    def epoch(self, exp: Any, state: State, row: Row) -> None:
        if state.epoch > self.last_epoch:
            self._add(epoch_metrics(row), state.epoch)
        self._flush()

    def finish(self, out: Path, summary: dict[str, Any]) -> None:
        self._add({f"test/{k}": v for k, v in summary["test"].items()}, summary["epochs"])
        self._flush()
        for path in sorted(out.iterdir()):
            if path.name.startswith(NOT_ARTIFACTS) or path.name == "tensorboard":
                continue
            log: Callable[..., None] = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
            log(self.run_id, str(path), *([path.name] if path.is_dir() else []))

    def close(self, status: str) -> None:
        self._flush()
        self.client.set_terminated(self.run_id, status)

    def _add(self, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.buffer += [Metric(k, float(v), now, step) for k, v in metrics.items()]

    def _flush(self) -> None:
        for i in range(0, len(self.buffer), 1000):  # the store's limit per batch
            self.client.log_batch(self.run_id, metrics=self.buffer[i : i + 1000])
        self.buffer, self.flushed = [], time.monotonic()


def _saved_run(out: Path, uri: str) -> str | None:
    """The run id that an earlier part of this run logged into, in the same store; None: a new run."""
    try:
        saved = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(saved, dict) and saved.get("tracking_uri") == uri and isinstance(saved.get("run_id"), str)
    return saved["run_id"] if ok else None


def _last_step(client: Any, run_id: str, key: str) -> int:
    return max((m.step for m in client.get_metric_history(run_id, key)), default=0)


def _artifacts(uri: str) -> str | None:
    """A local SQLite store keeps its artifacts beside it (mlartifacts/), wherever the run starts from."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").resolve().as_uri()


WRITERS: dict[str, Callable[..., Any]] = {"tensorboard": TensorBoardWriter, "mlflow": MLflowWriter}
