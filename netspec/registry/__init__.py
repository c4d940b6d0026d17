"""The registries: the single description of every name the language knows."""

from netspec.registry.base import Op, Problem, Registry
from netspec.registry.data import SOURCES, TRANSFORMS, Source, Transform
from netspec.registry.layers import ACTIVATIONS, LAYERS, Layer, TorchModule
from netspec.registry.training import LOSSES, METRICS, OPTIMIZERS, SCHEDULES, EarlyStopping, Loss, Metric

__all__ = [
    "ACTIVATIONS",
    "LAYERS",
    "LOSSES",
    "METRICS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SOURCES",
    "TRANSFORMS",
    "EarlyStopping",
    "Layer",
    "Loss",
    "Metric",
    "Op",
    "Problem",
    "Registry",
    "Source",
    "TorchModule",
    "Transform",
]
