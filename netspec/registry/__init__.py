"""The registries: the single description of every name the language knows.

One module per family. Importing this package registers every entry, in the order the
language reference lists them.
"""

# isort: off  (registration order is the order of the language reference)
from netspec.registry.activations import ACTIVATIONS
from netspec.registry.adversarial import AdversarialLoss
from netspec.registry.base import Op, Problem, Registry
from netspec.registry.layers import LAYERS, Layer, TorchModule

# isort: on
from netspec.registry.loggers import LOGGERS, Logger
from netspec.registry.losses import LOSSES, Loss
from netspec.registry.metrics import METRICS, EarlyStopping, Metric
from netspec.registry.optimizers import OPTIMIZERS, Optimizer
from netspec.registry.schedules import SCHEDULES, Schedule
from netspec.registry.search import PRUNERS, SAMPLERS, SEARCH, Distribution, Pruner, Sampler
from netspec.registry.sequence import Embedding
from netspec.registry.sources import SOURCES, Source, Task
from netspec.registry.tasks import TASKS, TrainingTask
from netspec.registry.transforms import TRANSFORMS, Transform

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "LOGGERS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "PRUNERS",
    "SAMPLERS",
    "SCHEDULES",
    "SEARCH",
    "SOURCES",
    "TASKS",
    "TRANSFORMS",
    "AdversarialLoss",
    "Distribution",
    "EarlyStopping",
    "Embedding",
    "Layer",
    "Logger",
    "Loss",
    "Metric",
    "Op",
    "Optimizer",
    "Problem",
    "Pruner",
    "Registry",
    "Sampler",
    "Schedule",
    "Source",
    "Task",
    "TorchModule",
    "TrainingTask",
    "Transform",
]
