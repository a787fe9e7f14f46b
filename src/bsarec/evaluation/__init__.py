"""Full-ranking evaluation under the paper's protocol."""

from bsarec.evaluation.metrics import KS, METRIC_NAMES, evaluate, metrics_from_ranks, target_ranks

__all__ = ["KS", "METRIC_NAMES", "evaluate", "metrics_from_ranks", "target_ranks"]
