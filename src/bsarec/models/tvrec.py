"""TV-Rec (Shin, Choi, Kim, Park, NeurIPS 2025) as its reference code builds it (docs/baselines.md).

Self-attention is replaced by a time-variant graph filter on a directed cycle: every position t has its own
filter taps, drawn from a small learned basis. No attention and no position embedding.
  E = Dropout(LayerNorm(item_emb)); before every block the padding rows are set to 0
  taps     W = C[:N] · Re(B̂),  B̂ = the basis rows at unit complex L2 norm       (N x (K+1), K = 50)
  filter   y_t = Σ_{k=0..min(t,K)} W[t,k] x_{t-k}  +  [t = 0] W[0,K] x_{N-1}     (the node-variant filter)
  layer    F = LayerNorm(X + Dropout(Y)),  H = LayerNorm(F + Dropout(W_2 GELU(W_1 F)))
  loss     CE(h, target) + reg_weight · Σ_layers [Ω(Re B) + Ω(Im B)],  Ω(X) = ||X̂ X̂ᵀ - I||_F²
The reference evaluates the filter in the graph spectral domain: the cyclic shift A on P = N + K - 1 slots is
diagonalised, A = U Λ U⁻¹, and Y = Re((C B̂ ∘ Vandermonde) U⁻¹ X_pad)[:N]. That operator is the lower-triangular
N x N matrix above (plus one wrap-around entry: position 0 sees the newest item, since the zero padding is
K - 1 long, not K); `spectral_filter_matrix` builds it the reference's way and a test checks the two agree.
The matrix is shared by all channels and users, so the filter runs as one matrix product over positions.
Im(B) acts only through the row norm and the regulariser; rows N.. of C are unused, as in the reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bsarec.models.base import StackedBlocksModel
from bsarec.models.batch import Batch
from bsarec.models.layers import Dropout, FeedForward, ItemEmbedding, init_weights
from bsarec.models.losses import next_item_loss

FILTER_ORDER = 50  # K: the reference fixes the number of shifts at 50, whatever max_len is


def normalised_basis(basis: torch.Tensor) -> torch.Tensor:
    """B̂: the complex basis (M, K+1) from its real form (M, K+1, 2), each row scaled to unit L2 norm."""
    complex_basis = torch.view_as_complex(basis)
    return complex_basis / complex_basis.abs().pow(2).sum(-1, keepdim=True).sqrt()


def filter_taps(coefficients: torch.Tensor, basis: torch.Tensor, max_len: int) -> torch.Tensor:
    """W = C[:N] · Re(B̂): position t's weight on the item k steps back, (N, K+1)."""
    return coefficients[:max_len] @ normalised_basis(basis).real


def time_domain_matrix(taps: torch.Tensor) -> torch.Tensor:
    """The N x N operator of the filter: M[t, s] = W[t, t-s] for 0 <= t-s <= K, and M[0, N-1] += W[0, K]."""
    n, order = taps.size(0), taps.size(1) - 1
    lag = torch.arange(n, device=taps.device)[:, None] - torch.arange(n, device=taps.device)[None, :]
    inside = (lag >= 0) & (lag <= order)
    matrix = torch.where(inside, taps.gather(1, lag.clamp(0, order)), taps.new_zeros(()))
    wrap = torch.zeros_like(matrix)
    wrap[0, n - 1] = 1.0
    return matrix + wrap * taps[0, order]  # the wrap-around entry, without an in-place write to the graph


def spectral_filter_matrix(coefficients: torch.Tensor, basis: torch.Tensor, max_len: int) -> torch.Tensor:
    """The same N x N operator built as the reference does, through the eigendecomposition of the cyclic shift
    on P = N + K - 1 slots (for tests; float64 keeps the eigenvectors accurate)."""
    order = basis.size(1) - 1
    slots = max_len + order - 1
    shift = torch.zeros(slots, slots, dtype=torch.float64)
    shift[torch.arange(slots), torch.arange(slots) - 1] = 1.0  # A[i, i-1] = 1 and A[0, P-1] = 1
    eigenvalues, eigenvectors = torch.linalg.eig(shift)
    response = coefficients.double().to(torch.complex128) @ normalised_basis(
        basis.double()
    )  # H = C B̂: (P, K+1)
    powers = eigenvalues[None, :] ** torch.arange(order + 1, dtype=torch.float64)[:, None]  # λ_j^k: (K+1, P)
    spectral = eigenvectors * (response @ powers)  # F[t, j] = U[t, j] Σ_k H[t, k] λ_j^k
    operator = spectral @ torch.linalg.inv(eigenvectors)
    return operator.real[:max_len, :max_len]  # X is zero beyond position N-1


def orthogonality_penalty(rows: torch.Tensor) -> torch.Tensor:
    """Ω(X) = ||X̂ X̂ᵀ - I||_F², X̂ = X with L2-normalised rows."""
    unit = F.normalize(rows, dim=-1)
    gram = unit @ unit.T
    return (gram - torch.eye(len(rows), device=rows.device)).pow(2).sum()


class TimeVariantFilter(nn.Module):
    def __init__(self, hidden_size: int, dropout: float, coefficients: torch.Tensor, basis: torch.Tensor):
        super().__init__()
        self.coefficients = nn.Parameter(coefficients.clone())  # C: (N + K - 1, M)
        self.basis = nn.Parameter(basis.clone())  # B: (M, K + 1, 2), real and imaginary parts
        self.dropout = Dropout(dropout)
        self.norm = nn.LayerNorm(hidden_size, eps=1e-12)

    def mixing_matrix(self, max_len: int) -> torch.Tensor:
        return time_domain_matrix(filter_taps(self.coefficients, self.basis, max_len))

    def regulariser(self) -> torch.Tensor:
        return orthogonality_penalty(self.basis[..., 0]) + orthogonality_penalty(self.basis[..., 1])

    def forward(self, x: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        matrix = self.mixing_matrix(x.size(1))
        rows, residual = (matrix[-1:], x[:, -1:]) if last_only else (matrix, x)
        return self.norm(residual + self.dropout(rows @ x))  # y_t = Σ_k W[t,k] x_{t-k}


class TVRecBlock(nn.Module):
    def __init__(self, hidden_size: int, dropout: float, coefficients: torch.Tensor, basis: torch.Tensor):
        super().__init__()
        self.filter = TimeVariantFilter(hidden_size, dropout, coefficients, basis)
        self.ffn = FeedForward(hidden_size, dropout)

    def forward(self, x: torch.Tensor, item_rows: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        return self.ffn(self.filter(x * item_rows, last_only))  # padding rows are zeroed before every block


class TVRec(StackedBlocksModel):
    losses = ("ce",)
    train_samples = "nonempty"  # its reference builds no empty-input sample (docs/baselines.md)

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        max_len: int = 50,
        num_layers: int = 2,
        hidden_dropout: float = 0.5,
        num_basis: int = 8,
        basis_reg_weight: float = 0.1,
        loss: str | None = None,
    ):
        super().__init__(n_items, hidden_size, max_len, hidden_dropout, loss)
        if num_basis < 1:
            raise ValueError(f"num_basis must be >= 1, got {num_basis}")
        self.basis_reg_weight = basis_reg_weight
        self.embedding = ItemEmbedding(n_items, hidden_size, hidden_dropout)
        # drawn once: every layer starts from the same C and B (the reference deep-copies one block)
        coefficients = torch.randn(max_len + FILTER_ORDER - 1, num_basis) * 1e-3
        basis = torch.randn(num_basis, FILTER_ORDER + 1, 2) * 1e-3
        self.blocks = nn.ModuleList(
            TVRecBlock(hidden_size, hidden_dropout, coefficients, basis) for _ in range(num_layers)
        )
        self.apply(init_weights)

    def block_mask(self, input_ids: torch.Tensor) -> torch.Tensor:
        """TV-Rec has no attention; its blocks take the rows that hold items, (B, N, 1), to zero the rest."""
        return (input_ids != 0).unsqueeze(-1).to(self.embedding.norm.weight.dtype)

    def loss(self, batch: Batch) -> torch.Tensor:
        ce = next_item_loss(self.encode(batch["inputs"]), self.item_embeddings, batch)
        penalty = sum(block.filter.regulariser() for block in self.blocks)
        return ce + self.basis_reg_weight * penalty
