"""The training loop and its helpers."""

from bsarec.training.helpers import read_history
from bsarec.training.trainer import TrainResult, train

__all__ = ["TrainResult", "read_history", "train"]
