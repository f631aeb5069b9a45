"""Command-line entry points, thin: they parse, call the library and turn errors into an
``error:`` line and exit status 2. Nothing in the library imports this package."""

from .eval import eval_main
from .train import main as train_main

__all__ = ["eval_main", "train_main"]
