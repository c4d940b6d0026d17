"""Loggers: where `netspec run` reports a run besides its run directory (`train { log tensorboard, mlflow }`).

Each entry holds its parameters, the optional package it needs (`package`, installed by the extra
`extra`: `pip install "netspec[tensorboard]"`) and the name of the runtime writer that does its
logging (`writer`, chosen by name in netspec/runtime/tracking.py). Nothing here imports the
package: `netspec check` stays fast and torch-free.
"""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import Field

from netspec.registry.base import NonNegInt, Op, PosInt, Registry


class Logger(Op):
    package: ClassVar[str | None] = None  # the module it needs, None: nothing beyond netspec's own
    extra: ClassVar[str | None] = None  # the netspec extra that installs it
    writer: ClassVar[str | None] = None  # the runtime writer, by name; None: the run directory already has it

    def missing_message(self) -> str:
        """What `netspec run` says when `package` is not installed."""
        return f'log {self.kind_name()} needs the {self.package} package: pip install "netspec[{self.extra}]"'


LOGGERS: Registry[type[Logger]] = Registry("logger")


@LOGGERS.register
class Csv(Logger):
    """The run directory's own record, always written: metrics.csv (a row per epoch), steps.csv (the loss
    and learning rate of every step) and summary.json. Naming it adds nothing; it is the default."""

    kind: Literal["csv"] = "csv"


@LOGGERS.register
class TensorBoard(Logger):
    """TensorBoard event files in the run directory (`tensorboard --logdir runs` shows every run): the loss
    and learning rate of every step, every column of metrics.csv per epoch, the test metrics, the model's
    graph, a grid of training inputs (of image specs) and of a GAN's fixed-noise samples after every
    epoch, and the spec's text and resolved values (the HParams and Text tabs)."""

    kind: Literal["tensorboard"] = "tensorboard"
    dir: str = Field("tensorboard", description="the event files' folder, in the run directory")
    graph: bool = Field(True, description="trace the model on one batch for the Graphs tab")
    images: NonNegInt = Field(16, description="training inputs (of images) to show; 0: none")
    package: ClassVar[str | None] = "tensorboard"
    extra: ClassVar[str | None] = "tensorboard"
    writer: ClassVar[str | None] = "tensorboard"
    positional: ClassVar = ("dir",)


@LOGGERS.register
class MLflow(Logger):
    """An MLflow run in the experiment named after the spec: the resolved spec as params (`train.optimizer.lr`),
    the loss and learning rate of every step, every column of metrics.csv per epoch, the test metrics, and
    the run directory (model.safetensors, metrics.csv, plots, spec.net) as artifacts; it ends FINISHED,
    FAILED or KILLED. The store: `uri`, else $MLFLOW_TRACKING_URI, else `mlflow.db` (SQLite) in the
    current directory (`mlflow ui` there shows it). Needs `pip install "netspec[mlflow]"`."""

    kind: Literal["mlflow"] = "mlflow"
    uri: Optional[str] = Field(
        None, description="the tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)"
    )
    experiment: Optional[str] = Field(None, description="the experiment's name (default: the spec file's name)")
    every: PosInt = Field(1, description="log the step loss and learning rate every this many steps")
    package: ClassVar[str | None] = "mlflow"
    extra: ClassVar[str | None] = "mlflow"
    writer: ClassVar[str | None] = "mlflow"
    positional: ClassVar = ("uri",)
