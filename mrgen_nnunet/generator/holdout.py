"""Held-out patients and the losses that score a stage's checkpoints on them (`--keep best`).

Each score is deterministic (fixed slices, noise and timesteps), so two checkpoints are compared on the same draws:
- autoencoder: MSE between held-out slices (B, 1, N, N) in [-1, 1] and their reconstructions from the posterior mode;
- text / mask: the training objective (ε-prediction MSE), at `n_timesteps` evenly spaced timesteps per slice, with
  noise from a fixed seed; the mask stage conditions on the held-out slices' own masks.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.generator.dataset import SliceSet


def holdout_split(data: SliceSet, fraction: float, seed: int, where) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, held-out indices) of `data`, whole patients on each side: round(fraction x patients),
    at least one, drawn with `seed`."""
    patients = sorted({r.patient_id for r in data.records})
    if not 0.0 < fraction < 1.0 or len(patients) < 2:
        raise MRGenError(f"cannot hold out {fraction:g} of {len(patients)} patient(s)", where,
                         "--keep best needs ≥ 2 patients in the index and 0 < --holdout < 1")
    n = max(1, round(fraction * len(patients)))
    held = set(np.random.default_rng(seed).choice(patients, n, replace=False).tolist())
    is_held = np.array([r.patient_id in held for r in data.records])
    return np.flatnonzero(~is_held), np.flatnonzero(is_held)


def _images(data: SliceSet, idx: np.ndarray, device) -> torch.Tensor:
    return torch.from_numpy(data.images[idx]).unsqueeze(1).to(device)


def autoencoder_score(data: SliceSet, idx: np.ndarray, batch_size: int = 16):
    def score(vae) -> float:
        device, total = next(vae.parameters()).device, 0.0
        for i in range(0, len(idx), batch_size):
            x = _images(data, idx[i:i + batch_size], device)
            recon = vae.decode(vae.encode(x.to(vae.dtype)).latent_dist.mode()).sample.float()
            total += F.mse_loss(recon, x, reduction="sum").item()
        return total / (len(idx) * data.images[0].size)

    return score


def diffusion_score(data: SliceSet, idx: np.ndarray, vae, text, sched, encode=None, unet=None,
                    n_timesteps: int = 8, batch_size: int = 16, seed: int = 0):
    """Stage 1 (`encode` None): the scored model is the UNet. Stage 2: it is the ControlNet, over frozen `unet`."""
    steps = sched.config.num_train_timesteps
    timesteps = np.linspace(0, steps - 1, n_timesteps).round().astype(int)
    pairs = [(i, t) for i in idx for t in timesteps]

    def score(model) -> float:
        device = next(model.parameters()).device
        gen = torch.Generator().manual_seed(seed)
        total = 0.0
        for k in range(0, len(pairs), batch_size):
            chunk = pairs[k:k + batch_size]
            rows = np.array([i for i, _ in chunk])
            x = _images(data, rows, device)
            latents = vae.to(device).encode(x.to(vae.dtype)).latent_dist.mode() * vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=gen).to(device)
            t = torch.tensor([t for _, t in chunk], device=device)
            noisy = sched.add_noise(latents, noise, t)
            cond = text([data.prompts[i] for i in rows]).to(device)
            if encode is None:
                pred = model(noisy, t, encoder_hidden_states=cond).sample
            else:
                down, mid = model(noisy, t, encoder_hidden_states=cond, controlnet_cond=encode(data.label_maps[rows]).to(device),
                                  return_dict=False)
                pred = unet.to(device)(noisy, t, encoder_hidden_states=cond, down_block_additional_residuals=down,
                                       mid_block_additional_residual=mid).sample
            total += F.mse_loss(pred.float(), noise.float(), reduction="sum").item()
        return total / (len(pairs) * latents[0].numel())

    return score
