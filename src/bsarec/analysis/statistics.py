"""The statistics behind `bsarec analyze`, each on plain tensors so that tests can check them on hand-made cases.

- Oversmoothing: the mean pairwise cosine similarity of the position representations of one sequence, over
  its real (non-padding) positions; 1 when every position carries the same vector.
- Spectrum: the energy per rfft bin along the positions (orthonormal, summed over hidden units); a constant
  sequence has all its energy in bin 0.
- BSARec's effective filter: per hidden unit, gain 1 on the kept low bins (the first c//2 + 1) and beta on
  the others, beta = sqrt_beta².
- Attention as a filter along the positions: a user's attention map A restricted to its L real positions
  (row-stochastic) is a linear operator on sequences of length L. Its gain at rfft bin k is ||A f_k|| for the
  unit Fourier vector f_k; the identity has gain 1 at every bin, uniform averaging passes bin 0 only, and a
  low-pass map has gains that fall with frequency. The gains are averaged into bands of normalised frequency
  k/L. With DC[A] = 11^T A / L (the part of A's output that is constant along positions) and HC[A] = A - DC[A],
  the ratio of their largest singular values says how much of A's action is not plain averaging.
- Groups: users by history length (cold start) and target items by training popularity (head, torso, tail
  thirds of the items ranked by training frequency).
"""

from __future__ import annotations

import numpy as np
import torch

from bsarec.evaluation.metrics import metrics_from_ranks

LENGTH_BUCKETS = ((1, 5), (6, 10), (11, 20), (21, 50), (51, None))


def mean_pairwise_cosine(states: torch.Tensor, real: torch.Tensor) -> float:
    """Mean over sequences (with 2 or more real positions) of the mean cosine over pairs i != j of real
    positions. `states` (B, N, d), `real` (B, N) bool."""
    unit = torch.nn.functional.normalize(states.double(), dim=-1) * real[..., None]
    gram = unit @ unit.transpose(1, 2)  # cosines; 0 where either position is padding
    count = real.sum(1).double()
    pair_sum = gram.sum((1, 2)) - (unit * unit).sum((1, 2))  # leave out i == j
    usable = count >= 2
    if not usable.any():
        return float("nan")
    return float((pair_sum[usable] / (count[usable] * (count[usable] - 1))).mean())


def spectrum_energy(states: torch.Tensor) -> torch.Tensor:
    """(N//2 + 1,) mean over sequences of the energy per rfft bin along positions, summed over hidden units."""
    spectrum = torch.fft.rfft(states.double(), dim=1, norm="ortho")
    return (spectrum.abs() ** 2).sum(-1).mean(0)


def low_frequency_share(energy: torch.Tensor, kept_bins: int) -> float:
    """Share of the energy in the first `kept_bins` bins."""
    return float(energy[:kept_bins].sum() / energy.sum())


def effective_filter(sqrt_beta: torch.Tensor, max_len: int, c: int) -> torch.Tensor:
    """(N//2 + 1, d) gain of BSARec's frequency branch per bin and hidden unit: 1 up to bin c//2, beta above."""
    beta = sqrt_beta.detach().double().flatten() ** 2
    gain = beta.repeat(max_len // 2 + 1, 1)
    gain[: c // 2 + 1] = 1.0
    return gain


FREQUENCY_BANDS = ((0.0, 0.0), (0.0, 0.125), (0.125, 0.25), (0.25, 0.375), (0.375, 0.5))
BAND_NAMES = ("0 (DC)", "(0, 1/8]", "(1/8, 1/4]", "(1/4, 3/8]", "(3/8, 1/2]")


def attention_filter(
    maps: torch.Tensor, real: torch.Tensor, min_length: int = 8
) -> dict[str, list[float] | float]:
    """Mean gain per band of normalised frequency (BAND_NAMES) and mean sigma_max(HC[A]) / sigma_max(DC[A]) of
    the attention maps (B, heads, N, N) restricted to each sequence's real positions (`real` (B, N) bool);
    sequences with fewer than `min_length` real positions are left out. NaN for a band with no bin."""
    sums, counts, ratios = torch.zeros(len(FREQUENCY_BANDS)), torch.zeros(len(FREQUENCY_BANDS)), []
    for a, keep in zip(maps.double(), real, strict=True):
        length = int(keep.sum())
        if length < min_length:
            continue
        a = a[:, keep][:, :, keep]  # (heads, L, L)
        # A f_k = sqrt(L) * ifft(A, along keys)[:, k] for the unit Fourier vector f_k[n] = exp(2 pi i k n / L)/sqrt(L)
        response = torch.fft.ifft(a, dim=-1)[..., : length // 2 + 1] * length**0.5
        gains = response.abs().pow(2).sum(-2).sqrt().mean(0)  # (L//2 + 1,), averaged over heads
        frequency = torch.arange(length // 2 + 1, dtype=torch.float64) / length
        for band, (low, high) in enumerate(FREQUENCY_BANDS):
            inside = frequency == 0 if high == 0 else (frequency > low) & (frequency <= high)
            sums[band] += gains[inside].sum()
            counts[band] += int(inside.sum())
        dc = a.mean(-2, keepdim=True).expand_as(a)
        dc_sigma = torch.linalg.matrix_norm(dc, ord=2)
        hc_sigma = torch.linalg.matrix_norm(a - dc, ord=2)
        ratios.append(float((hc_sigma / dc_sigma).mean()))
    bands = [float(s / c) if c else float("nan") for s, c in zip(sums, counts, strict=True)]
    return {"band_gain": bands, "hc_to_dc": float(np.mean(ratios)) if ratios else float("nan")}


def length_bucket(length: int) -> str:
    for low, high in LENGTH_BUCKETS:
        if length >= low and (high is None or length <= high):
            return f"{low}-{high}" if high is not None else f">{low - 1}"
    return "0"


def popularity_groups(train_counts: np.ndarray) -> np.ndarray:
    """Per item: 0 head, 1 torso, 2 tail: thirds of the items (row 0 excluded) ranked by training frequency,
    most frequent first; ties keep item order."""
    items = np.arange(1, len(train_counts))
    ranked = items[np.argsort(-train_counts[1:], kind="stable")]
    groups = np.zeros(len(train_counts), dtype=np.int64)
    for group, part in enumerate(np.array_split(ranked, 3)):
        groups[part] = group
    return groups


def grouped_metrics(ranks: torch.Tensor, labels: list[str]) -> dict[str, dict[str, float]]:
    """Metrics of the users of each label, with their count."""
    out = {}
    for label in dict.fromkeys(labels):
        chosen = torch.tensor([lab == label for lab in labels])
        out[label] = {"users": int(chosen.sum()), **metrics_from_ranks(ranks[chosen])}
    return out
