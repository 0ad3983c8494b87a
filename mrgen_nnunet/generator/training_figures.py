"""Pictures of a generator training run: sample grids and loss plots (PNG, written atomically)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.io import write_atomic, write_figure


def save_grid(images: torch.Tensor, path: Path, nrow: int = 4) -> Path:
    """(B, 1, N, N) in [-1, 1] -> an 8-bit PNG grid (row-major, `nrow` per row), written atomically."""
    from PIL import Image

    x = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()[:, 0]
    b, n, _ = x.shape
    rows = (b + nrow - 1) // nrow
    grid = np.zeros((rows * n, min(b, nrow) * n), dtype=np.uint8)
    for i in range(b):
        r, c = divmod(i, nrow)
        grid[r * n:(r + 1) * n, c * n:(c + 1) * n] = x[i]
    return write_atomic(path, lambda tmp: Image.fromarray(grid).save(tmp, format="PNG"))


def save_loss_plot(csv: Path, path: Path, window: int = 50) -> Path:
    """PNG of a `step,loss[,...]` CSV: the raw loss and its running mean over `window` steps (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [ln.split(",") for ln in csv.read_text(encoding="utf-8").splitlines()[1:] if ln]
    steps, loss = np.array([int(r[0]) for r in rows]), np.array([float(r[1]) for r in rows])
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, loss, lw=0.5, alpha=0.4, label="loss")
    if len(loss) >= window:
        ax.plot(steps[window - 1:], np.convolve(loss, np.ones(window) / window, "valid"), label=f"mean of {window}")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title=csv.stem)
    ax.legend()
    fig.tight_layout()
    return write_figure(fig, path, dpi=100)
