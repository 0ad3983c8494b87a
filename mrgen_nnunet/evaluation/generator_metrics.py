"""Generator quality metrics (MRGen paper §4): Fréchet distance, BiomedCLIP image/text similarity, per-label
intensity statistics, and autoencoder PSNR/SSIM.

All images here are normalised slices: (B, N, N) or (B, 1, N, N) float32 in [-1, 1] (per-slice min–max, see
`mrgen_nnunet.data.normalize`). Intensity statistics are reported in that [-1, 1] unit, so real and synthetic
slices are compared on the same per-slice scale whatever their scanner range.

Outputs of `evaluate_generator` in `out_dir`: `generator_metrics.json`, `generator_metrics.md`,
`generator_samples.png` (real vs synthetic grid), `generator_histograms.png` (per-label intensity histograms).
Outputs of `evaluate_autoencoder`: `autoencoder_metrics.json`, `autoencoder_metrics.md`, `autoencoder_samples.png`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.io import write_figure, write_text_atomic
from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.evaluation.generator_features import (
    build_feature_extractor,
    clip_image_features,
    load_biomedclip,
)
from mrgen_nnunet.evaluation.generator_inputs import EvalSliceSet, load_eval_slices

RANDOM_CAVEAT = ("RANDOM-INITIALISED feature extractor (no --weights): the Fréchet distance only ranks runs made "
                 "with the same extractor and seed; it is not comparable to published FID values")
HIST_BINS = 64


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    transient=True)


def _batches(images: np.ndarray, batch_size: int):
    for start in range(0, len(images), batch_size):
        yield torch.from_numpy(np.ascontiguousarray(images[start: start + batch_size], dtype=np.float32))[:, None]


def frechet_distance(real: np.ndarray, synthetic: np.ndarray, extractor: torch.nn.Module, batch_size: int = 16,
                     progress=None) -> float:
    """Fréchet distance between the feature distributions of two slice sets.

    real, synthetic: (B, N, N) float32 in [-1, 1], B >= 2 each. `extractor`: (b, 1, N, N) -> (b, D) with a
    `num_features` attribute (see generator_features). Uses torchmetrics' FrechetInceptionDistance.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    if len(real) < 2 or len(synthetic) < 2:
        raise MRGenError(f"the Fréchet distance needs at least 2 slices per set (got {len(real)} real, "
                         f"{len(synthetic)} synthetic)", "--real/--synthetic", "add more images")
    fid = FrechetInceptionDistance(feature=extractor, reset_real_features=True)
    task = progress.add_task("features", total=len(real) + len(synthetic)) if progress else None
    with torch.inference_mode():
        for images, is_real in ((real, True), (synthetic, False)):
            for batch in _batches(images, batch_size):
                fid.update(batch, real=is_real)
                if progress:
                    progress.advance(task, len(batch))
        return float(fid.compute())


def intensity_statistics(real: EvalSliceSet, synthetic: EvalSliceSet) -> dict[str, dict]:
    """Per label (background included): intensity mean/std/count inside the mask for both sets, the 1-D
    Wasserstein distance between the two intensity distributions, and HIST_BINS-bin densities on [-1, 1].
    Needs labels in both sets. Labels are matched by value; a name comes from the real set unless that one is a
    generic `label_<v>` (plain folders) and the synthetic set's dataset.json names it."""
    from scipy.stats import wasserstein_distance

    names = {v: k for k, v in real.labels.items()}
    for name, value in synthetic.labels.items():
        if names.get(value, "label_").startswith("label_"):
            names[value] = name
    edges = np.linspace(-1.0, 1.0, HIST_BINS + 1)
    stats = {}
    for value, name in sorted(names.items()):
        row = {}
        values = {}
        for key, slice_set in (("real", real), ("synthetic", synthetic)):
            v = np.concatenate([s.image[s.label == value] for s in slice_set.slices]).astype(np.float64)
            values[key] = v
            row[key] = {"mean": float(v.mean()) if v.size else None, "std": float(v.std()) if v.size else None,
                        "pixels": int(v.size),
                        "histogram": np.histogram(v, bins=edges, density=True)[0].round(5).tolist() if v.size else []}
        both = values["real"].size and values["synthetic"].size
        row["wasserstein"] = float(wasserstein_distance(values["real"], values["synthetic"])) if both else None
        row["mean_difference"] = row["synthetic"]["mean"] - row["real"]["mean"] if both else None
        stats[name] = row
    return stats


def clip_similarity(model: torch.nn.Module, tokenizer, real: np.ndarray, synthetic: np.ndarray,
                    prompt: str | None, batch_size: int = 16) -> dict[str, float | None]:
    """BiomedCLIP similarities: `clip_image` = mean cosine similarity over all (synthetic, real) pairs of image
    embeddings; `clip_text` = mean cosine similarity of synthetic images to `prompt` (None without a prompt).
    real, synthetic: (B, N, N) float32 in [-1, 1]."""
    tower = clip_image_features(model)
    with torch.inference_mode():
        emb = {}
        for key, images in (("real", real), ("synthetic", synthetic)):
            feats = torch.cat([tower(b) for b in _batches(images, batch_size)])
            emb[key] = torch.nn.functional.normalize(feats.float(), dim=-1)
        result = {"clip_image": float((emb["synthetic"] @ emb["real"].T).mean()), "clip_text": None}
        if prompt:
            text = torch.nn.functional.normalize(model.encode_text(tokenizer([prompt])).float(), dim=-1)
            result["clip_text"] = float((emb["synthetic"] @ text.T).mean())
    return result


def plot_rows(rows: dict[str, np.ndarray], path: Path, columns: int = 8) -> None:
    """A grid PNG: one row per entry, `columns` images each. Each value (B, N, N) in [-1, 1] (or [0, 2] error)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = max(1, min(columns, max(len(v) for v in rows.values())))
    fig, axes = plt.subplots(len(rows), columns, figsize=(1.6 * columns, 1.7 * len(rows)), squeeze=False)
    for r, (title, images) in enumerate(rows.items()):
        for c in range(columns):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c], cmap="gray", vmin=-1, vmax=1)
        axes[r][0].set_title(title, fontsize=8, loc="left")
    write_figure(fig, path, dpi=100, bbox_inches="tight")


def plot_histograms(stats: dict[str, dict], path: Path) -> None:
    """One panel per label: real vs synthetic intensity density on [-1, 1]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    centres = (np.linspace(-1, 1, HIST_BINS + 1)[:-1] + np.linspace(-1, 1, HIST_BINS + 1)[1:]) / 2
    fig, axes = plt.subplots(1, len(stats), figsize=(3.2 * len(stats), 2.6), squeeze=False)
    for ax, (name, row) in zip(axes[0], stats.items(), strict=True):
        for key, colour in (("real", "tab:blue"), ("synthetic", "tab:orange")):
            if row[key]["histogram"]:
                ax.plot(centres, row[key]["histogram"], color=colour, label=f"{key} (n={row[key]['pixels']})")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("normalised intensity [-1, 1]", fontsize=8)
        ax.legend(fontsize=7)
    write_figure(fig, path, dpi=100, bbox_inches="tight")


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def generator_markdown(result: dict) -> str:
    """The markdown report of `evaluate_generator`'s result dict."""
    lines = ["# Generator evaluation", "", f"- real: `{result['real']}` ({result['real_slices']} slices)",
             f"- synthetic: `{result['synthetic']}` ({result['synthetic_slices']} slices)",
             f"- resolution: {result['resolution']}², features: {result['features']} ({result['feature_dims']}-d)", ""]
    if result["random_feature_weights"]:
        lines += [f"> **WARNING: {RANDOM_CAVEAT}.**", ""]
    lines += ["| metric | value |", "|---|---|", f"| Fréchet distance ({result['features']}) | {_fmt(result['fid'])} |",
              f"| CLIP image similarity | {_fmt(result['clip_image'])} |",
              f"| CLIP text similarity | {_fmt(result['clip_text'])} |", ""]
    if result["intensity"]:
        lines += ["Intensities inside each label, normalised per slice to [-1, 1]:", "",
                  "| label | real mean ± std | synthetic mean ± std | Δ mean | Wasserstein | real px | synthetic px |",
                  "|---|---|---|---|---|---|---|"]
        for name, row in result["intensity"].items():
            r, s = row["real"], row["synthetic"]
            lines.append(f"| {name} | {_fmt(r['mean'])} ± {_fmt(r['std'])} | {_fmt(s['mean'])} ± {_fmt(s['std'])} | "
                         f"{_fmt(row['mean_difference'])} | {_fmt(row['wasserstein'])} | {r['pixels']} | {s['pixels']} |")
    else:
        lines.append("No intensity statistics: labels are missing in one of the sets.")
    return "\n".join(lines) + "\n"


def evaluate_generator(real: str | Path, synthetic: str | Path, out_dir: str | Path, features: str = "inception",
                       weights: str | Path | None = None, resolution: int = 256, max_slices: int | None = None,
                       clip_weights: str | None = None, prompt: str | None = None, batch_size: int = 16,
                       seed: int = 0, dims: int = 2048) -> dict:
    """Compare real and synthetic target-sequence slices; write JSON, markdown and PNGs to `out_dir`.

    real, synthetic: image folders or nnU-Net raw dataset folders (see generator_inputs). `features` in
    inception|radimagenet|biomedclip; `weights` None -> random-initialised extractor (result says so); `dims`:
    Inception feature size (2048 = standard FID).
    `clip_weights`: BiomedCLIP folder/hub id for CLIP image/text similarity (skipped, values None, when absent).
    Returns the result dict written to generator_metrics.json.
    """
    out_dir = Path(out_dir)
    real_set = load_eval_slices(real, resolution, max_slices, seed)
    synthetic_set = load_eval_slices(synthetic, resolution, max_slices, seed)
    extractor, random_weights = build_feature_extractor(features, weights, seed, dims)
    clip_model = load_biomedclip(clip_weights) if clip_weights else None
    real_images, synthetic_images = real_set.images(), synthetic_set.images()
    with _progress() as progress:
        fid = frechet_distance(real_images, synthetic_images, extractor, batch_size, progress)
    clip = {"clip_image": None, "clip_text": None}
    if clip_model is not None:
        clip = clip_similarity(*clip_model, real_images, synthetic_images, prompt, batch_size)
    with_labels = real_set.has_labels and synthetic_set.has_labels and real_set.labels
    intensity = intensity_statistics(real_set, synthetic_set) if with_labels else {}
    result = {
        "real": str(real_set.source), "synthetic": str(synthetic_set.source), "resolution": resolution,
        "real_slices": len(real_set.slices), "synthetic_slices": len(synthetic_set.slices),
        "features": features, "feature_dims": int(extractor.num_features), "weights": None if weights is None else str(weights),
        "random_feature_weights": random_weights, "caveat": RANDOM_CAVEAT if random_weights else None,
        "fid": fid, **clip, "prompt": prompt, "seed": seed, "intensity": intensity,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_rows({"real": real_images[:8], "synthetic": synthetic_images[:8]}, out_dir / "generator_samples.png")
    if intensity:
        plot_histograms(intensity, out_dir / "generator_histograms.png")
    write_text_atomic(generator_markdown(result), out_dir / "generator_metrics.md")
    write_text_atomic(json.dumps(result, indent=2) + "\n", out_dir / "generator_metrics.json")
    return result


def reconstruct(vae, images: np.ndarray, batch_size: int = 8, progress=None) -> np.ndarray:
    """VAE reconstructions (posterior mode, no sampling) of (B, N, N) float32 in [-1, 1] -> (B, N, N) in [-1, 1]."""
    task = progress.add_task("reconstruct", total=len(images)) if progress else None
    out = []
    with torch.inference_mode():
        for batch in _batches(images, batch_size):
            latents = vae.encode(batch.to(vae.dtype)).latent_dist.mode()
            out.append(vae.decode(latents).sample.float().clamp(-1, 1)[:, 0].numpy())
            if progress:
                progress.advance(task, len(batch))
    return np.concatenate(out)


def reconstruction_metrics(images: np.ndarray, reconstructions: np.ndarray) -> dict[str, float]:
    """Mean per-slice PSNR (dB) and SSIM of (B, N, N) arrays in [-1, 1], computed on [0, 1] (data range 1)."""
    from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

    target = (torch.from_numpy(images)[:, None].float() + 1) / 2
    preds = (torch.from_numpy(reconstructions)[:, None].float() + 1) / 2
    psnr = PeakSignalNoiseRatio(data_range=1.0, dim=(1, 2, 3), reduction="elementwise_mean")
    ssim = StructuralSimilarityIndexMeasure(data_range=1.0)
    return {"psnr": float(psnr(preds, target)), "ssim": float(ssim(preds, target)),
            "mse": float(((preds - target) ** 2).mean())}


def evaluate_autoencoder(vae: str | Path, images: str | Path, out_dir: str | Path, resolution: int = 256,
                         max_slices: int | None = None, batch_size: int = 8, seed: int = 0) -> dict:
    """PSNR/SSIM of a diffusers AutoencoderKL folder's reconstructions of held-out slices; writes JSON,
    markdown and a PNG (originals, reconstructions, |error|) to `out_dir`. Returns the result dict."""
    from diffusers import AutoencoderKL

    vae_dir, out_dir = Path(vae), Path(out_dir)
    if not (vae_dir / "config.json").is_file():
        raise MRGenError("not a diffusers AutoencoderKL folder (no config.json)", vae_dir,
                         "pass the generator's vae/ folder")
    model = AutoencoderKL.from_pretrained(vae_dir).eval()
    channels, blocks = model.config.in_channels, len(model.config.block_out_channels)
    if channels != 1:
        raise MRGenError(f"the VAE takes {channels} input channels, MR slices have 1", vae_dir,
                         "pass a 1-channel MRGen VAE")
    factor = 2 ** (blocks - 1)
    if resolution % factor:
        raise MRGenError(f"resolution {resolution} is not a multiple of the VAE's downsampling factor {factor}",
                         "--resolution", f"use a multiple of {factor}")
    slice_set = load_eval_slices(images, resolution, max_slices, seed)
    originals = slice_set.images()
    with _progress() as progress:
        recon = reconstruct(model, originals, batch_size, progress)
    metrics = reconstruction_metrics(originals, recon)
    result = {"vae": str(vae_dir), "images": str(slice_set.source), "slices": len(originals),
              "resolution": resolution, **metrics, "seed": seed}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_rows({"original": originals[:8], "reconstruction": recon[:8],
               "|error| (x2 for visibility)": np.abs(recon[:8] - originals[:8]) * 2 - 1}, out_dir / "autoencoder_samples.png")
    write_text_atomic("# Autoencoder evaluation\n\n"
                      f"- VAE: `{vae_dir}`\n- images: `{slice_set.source}` ({len(originals)} slices, {resolution}²)\n\n"
                      "| metric | value |\n|---|---|\n"
                      f"| PSNR (dB, [0,1] range) | {metrics['psnr']:.3f} |\n| SSIM | {metrics['ssim']:.4f} |\n"
                      f"| MSE ([0,1] range) | {metrics['mse']:.6f} |\n", out_dir / "autoencoder_metrics.md")
    write_text_atomic(json.dumps(result, indent=2) + "\n", out_dir / "autoencoder_metrics.json")
    return result
