"""Per-case sampling probabilities that make real:synthetic draws follow a ratio (pure numpy).

nnU-Net's data loader draws *cases* (`np.random.choice(identifiers, p=...)`), so the weight of one case is its
group's share divided by the group's size: with ratio r = real:synthetic, a real case gets r/(r+1)/n_real and a
synthetic case 1/(r+1)/n_synthetic.
"""

from __future__ import annotations

import numpy as np


def sampling_probabilities(identifiers: list[str], synthetic: set[str] | list[str],
                           real_to_synthetic_ratio: float | None) -> np.ndarray | None:
    """Probabilities (len(identifiers),) float64 summing to 1, in `identifiers` order.

    None (uniform, nnU-Net's default) when the ratio is None or the training set holds only real or only synthetic
    cases.
    """
    synthetic = set(synthetic)
    is_syn = np.array([c in synthetic for c in identifiers], dtype=bool)
    n_syn = int(is_syn.sum())
    n_real = len(identifiers) - n_syn
    if real_to_synthetic_ratio is None or n_syn == 0 or n_real == 0:
        return None
    r = float(real_to_synthetic_ratio)
    if r <= 0:
        raise ValueError(f"real_to_synthetic_ratio must be > 0, got {r}")
    p = np.where(is_syn, 1.0 / (r + 1.0) / n_syn, r / (r + 1.0) / n_real)
    return p / p.sum()
