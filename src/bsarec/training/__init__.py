"""The training loop and its helpers."""

from bsarec.training.trainer import TrainResult, train

__all__ = ["TrainResult", "train"]
