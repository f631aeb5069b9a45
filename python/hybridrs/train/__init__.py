"""Training: settings, batches, loss, checkpoints, the trainer, the model card, and the
strategy comparison. Entry point: ``hybridrs-train`` (:mod:`hybridrs.cli.train`)."""

from .compare import compare
from .settings import TrainConfig, build_parser, load_config
from .trainer import Callback, Trainer, train

__all__ = ["Callback", "TrainConfig", "Trainer", "build_parser", "compare", "load_config", "train"]
