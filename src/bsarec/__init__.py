"""bsarec: BSARec and sequential recommendation under the paper's exact protocol."""

from bsarec.api import Recommendations, SequentialRecommender
from bsarec.config import RunConfig
from bsarec.data import (
    SequenceDataset,
    generate_synthetic,
    leave_one_out,
    read_benchmark_file,
    read_interaction_log,
    resolve_dataset,
)
from bsarec.data.item_features import ItemFeatures, read_item_features
from bsarec.evaluation import evaluate
from bsarec.run_dir import RunDir, read_history

__version__ = "0.1.0"

__all__ = [
    "ItemFeatures",
    "Recommendations",
    "RunConfig",
    "RunDir",
    "SequenceDataset",
    "SequentialRecommender",
    "evaluate",
    "generate_synthetic",
    "leave_one_out",
    "read_benchmark_file",
    "read_history",
    "read_interaction_log",
    "read_item_features",
    "resolve_dataset",
]
