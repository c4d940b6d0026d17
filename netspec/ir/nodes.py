"""The intermediate representation: what a checked spec means.

Frozen, strict Pydantic models with ``extra="forbid"``, tagged by ``kind`` and carrying
source spans. Layers, losses, optimizers, ... are the registry classes themselves, so a
layer's parameters are described once. ``netspec schema`` prints the JSON Schema, and
``Program.model_validate_json(p.model_dump_json()) == p``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, Optional, Union

from pydantic import Field

from netspec.language.span import Node, Shape, Span
from netspec.registry import (
    LAYERS,
    LOGGERS,
    LOSSES,
    METRICS,
    OPTIMIZERS,
    PRUNERS,
    SAMPLERS,
    SCHEDULES,
    SEARCH,
    SOURCES,
    TASKS,
    TRANSFORMS,
    EarlyStopping,
    Layer,
)
from netspec.registry.search import Tpe
from netspec.registry.tasks import Supervised

FORMAT_VERSION = 1


if TYPE_CHECKING:  # the unions are built from the registry at run time; mypy sees the bases
    Step = Any
    from netspec.registry import Logger as LoggerOp
    from netspec.registry import Loss as LossOp
    from netspec.registry import Metric as MetricOp
    from netspec.registry import Source as SourceOp
    from netspec.registry import Transform as TransformOp
    from netspec.registry.optimizers import Optimizer as OptimizerOp
    from netspec.registry.schedules import Schedule as ScheduleOp
    from netspec.registry.search import Distribution as SearchOp
    from netspec.registry.search import Pruner as PrunerOp
    from netspec.registry.search import Sampler as SamplerOp
    from netspec.registry.tasks import TrainingTask as TaskOp
else:
    TaskOp = TASKS.union()
    SourceOp, TransformOp = SOURCES.union(), TRANSFORMS.union()
    LossOp, OptimizerOp, ScheduleOp, MetricOp = LOSSES.union(), OPTIMIZERS.union(), SCHEDULES.union(), METRICS.union()
    SearchOp, SamplerOp, PrunerOp = SEARCH.union(), SAMPLERS.union(), PRUNERS.union()
    LoggerOp = LOGGERS.union()


class _Composite(Node):
    span: Span
    input_shape: Shape
    output_shape: Shape
    params: int = Field(description="trainable parameters inside")


class BlockUse(_Composite):
    """A use of a `block` definition, expanded with its arguments."""

    kind: Literal["block"] = "block"
    name: str
    args: dict[str, Any] = Field(default_factory=dict, description="argument values by parameter name")
    steps: list[Step]


class Repeat(_Composite):
    """`repeat N { ... }`: the body expanded N times (shapes may differ per iteration)."""

    kind: Literal["repeat"] = "repeat"
    count: int
    iterations: list[list[Step]]


class Residual(_Composite):
    """`residual { ... }`: y = x + body(x)."""

    kind: Literal["residual"] = "residual"
    steps: list[Step]


if not TYPE_CHECKING:
    Step = Annotated[
        Union[tuple(LAYERS.entries.values()) + (BlockUse, Repeat, Residual)],
        Field(discriminator="kind"),
    ]


class Network(Node):
    kind: Literal["network"] = "network"
    name: str
    span: Span
    input_shape: Shape
    output_shape: Shape
    params: int
    steps: list[Step]


class Dataset(Node):
    """The `dataset` section."""

    kind: Literal["dataset"] = "dataset"
    name: Optional[str] = None
    span: Span
    source: SourceOp = Field(description="where samples come from")
    transforms: list[TransformOp] = Field(default_factory=list, description="preprocessing and augmentation, in order")
    batch: Annotated[int, Field(gt=0)] = Field(32, description="samples per training batch")
    validation: Annotated[float, Field(ge=0, lt=1)] = Field(
        0.0, description="fraction of the training data held out for validation"
    )
    test: Optional[Annotated[float, Field(gt=0, lt=1)]] = Field(
        None, description="fraction held out for testing, for sources without a test split"
    )
    shuffle: bool = Field(True, description="reshuffle the training data every epoch")
    workers: Annotated[int, Field(ge=0)] = Field(0, description="loader processes for streamed sources")
    limit: Optional[Annotated[int, Field(gt=0)]] = Field(
        None, description="use only the first N training samples (for quick runs)"
    )


Device = Literal["auto", "cpu", "cuda", "mps"]


class Train(Node):
    """The `train` section."""

    kind: Literal["train"] = "train"
    span: Span
    task: TaskOp = Field(default_factory=Supervised, description="what is trained: one model, or a GAN")
    model: Optional[str] = Field(None, description="the network to train (the supervised task)")
    generator: Optional[str] = Field(None, description="the network that turns noise into samples (task gan)")
    discriminator: Optional[str] = Field(None, description="the network that scores samples as real (task gan)")
    loss: LossOp = Field(description="the training loss")
    optimizer: OptimizerOp = Field(description="the optimizer and its settings (of both networks of a GAN)")
    generator_optimizer: Optional[OptimizerOp] = Field(None, description="the generator's, if not `optimizer`")
    discriminator_optimizer: Optional[OptimizerOp] = Field(None, description="the discriminator's, if not `optimizer`")
    schedule: Optional[ScheduleOp] = Field(None, description="learning-rate schedule")
    epochs: Optional[Annotated[int, Field(gt=0)]] = Field(None, description="passes over the training data")
    steps: Optional[Annotated[int, Field(gt=0)]] = Field(None, description="optimizer steps (instead of epochs)")
    metrics: list[MetricOp] = Field(
        default_factory=list,
        description="reported on validation and test data",
    )
    seed: Annotated[int, Field(ge=0)] = Field(0, description="seed for every random generator")
    device: Device = Field("auto", description="auto picks cuda, then mps, then cpu")
    early_stopping: Optional[EarlyStopping] = Field(None, description="stop when validation stops improving")
    clip_grad: Optional[Annotated[float, Field(gt=0)]] = Field(None, description="clip the gradient norm to this")
    precision: Literal["fp32", "bf16", "fp16", "auto"] = Field(
        "fp32", description="auto: bf16 mixed precision where the device supports it"
    )
    compile: bool = Field(False, description="compile the model with torch.compile")
    log: list[LoggerOp] = Field(
        default_factory=list,
        description="where the run is logged besides its run directory's CSV files: tensorboard, mlflow "
        "(docs/tracking.md); `netspec run --log` replaces it",
    )

    def trained(self) -> dict[str, str]:
        """The networks it trains, by the key that names them: {"model": "LeNet"}."""
        return {key: getattr(self, key) for key in self.task.networks if getattr(self, key)}

    def optimizer_of(self, key: str) -> OptimizerOp:
        """The optimizer of the network that `key` names: its own (`generator_optimizer`), or `optimizer`."""
        own = getattr(self, f"{key}_optimizer", None)
        return own if own is not None else self.optimizer


Direction = Literal["auto", "minimize", "maximize"]


class Tune(Node):
    """The `tune` section: how `netspec tune` searches the spec's search expressions."""

    kind: Literal["tune"] = "tune"
    span: Span
    metric: str = Field(
        "val_loss",
        description="what scores a trial: `val_loss` or `val_` and a metric of the train section, "
        "reported to the pruner after every epoch; a trial's score is its last epoch's",
    )
    direction: Direction = Field("auto", description="auto: maximize a metric that is better higher, else minimize")
    trials: Optional[Annotated[int, Field(gt=0)]] = Field(
        None,
        description="trials of the study in all, those of earlier `netspec tune` runs included "
        "(neither this nor `timeout`: 20)",
    )
    timeout: Optional[Annotated[float, Field(gt=0)]] = Field(
        None, description="seconds after which `netspec tune` starts no new trial"
    )
    sampler: SamplerOp = Field(default_factory=Tpe, description="how the values of the next trial are drawn")
    pruner: Optional[PrunerOp] = Field(None, description="when a trial stops early; none: every trial runs to its end")


class SearchParam(Node):
    """A search expression of the spec: the parameter `netspec tune` searches."""

    kind: Literal["search"] = "search"
    name: str = Field(description="the parameter's name in the study (`lr`, `width`, `dropout.p`)")
    span: Span
    distribution: SearchOp
    default: Any = Field(description="the value `netspec run` uses")


class Program(Node):
    """A checked spec."""

    kind: Literal["program"] = "program"
    version: int = FORMAT_VERSION
    constants: dict[str, Any] = Field(default_factory=dict)
    networks: list[Network]
    dataset: Optional[Dataset] = None
    train: Optional[Train] = None
    tune: Optional[Tune] = None
    search: list[SearchParam] = Field(
        default_factory=list, description="the search expressions; every value here is their default"
    )

    def network(self, name: str | None) -> Network | None:
        return next((n for n in self.networks if n.name == name), None)


def leaves(steps: list[Any]) -> list[Layer]:
    """The layers of some steps, in order, through blocks, repeats and residuals."""
    out: list[Layer] = []
    for s in steps:
        if isinstance(s, Layer):
            out.append(s)
        elif isinstance(s, Repeat):
            for it in s.iterations:
                out += leaves(it)
        else:
            out += leaves(s.steps)
    return out


def schema() -> dict[str, Any]:
    """The JSON Schema of the IR."""
    return Program.model_json_schema()
