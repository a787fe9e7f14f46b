"""Reading, preprocessing, splitting and batching."""

from bsarec.data.benchmark_format import read_benchmark_file
from bsarec.data.dataset import SequenceDataset
from bsarec.data.interaction_log import read_interaction_log
from bsarec.data.registry import REGISTRY, resolve_dataset
from bsarec.data.split import EvalSet, LeaveOneOutSplit, leave_one_out
from bsarec.data.synthetic import generate_synthetic

__all__ = [
    "REGISTRY",
    "EvalSet",
    "LeaveOneOutSplit",
    "SequenceDataset",
    "generate_synthetic",
    "leave_one_out",
    "read_benchmark_file",
    "read_interaction_log",
    "resolve_dataset",
]
