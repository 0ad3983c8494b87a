"""Generator on real MS-CMRSeg: train the three stages on bSSFP (labelled) + LGE (unlabeled) patients 1–20,
report VAE PSNR/SSIM on patients 21–25, loss curves, steps/s, and a grid of stage-2 samples (bSSFP masks -> LGE
prompt). Usage:

    python benchmarks/generator_mscmrseg.py --data ../shared/data/mscmrseg --out runs/gen_mscmr --steps 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mrgen_nnunet.data.io import read_image
from mrgen_nnunet.data.prompts import build_prompt, resolve_modality
from mrgen_nnunet.data.records import SliceRecord, write_index

LABELS = {"background": 0, "myocardium": 1, "left ventricle": 2, "right ventricle": 3}


def build_index(data: Path, out: Path, patients, labelled_seq: str, unlabelled_seq: str) -> Path:
    """2D records (slice axis = last NIfTI axis = first SimpleITK axis) of slices with heart labels."""
    records = []
    for seq, labelled in ((labelled_seq, True), (unlabelled_seq, False)):
        info = resolve_modality(seq)
        for k in patients:
            lab, _ = read_image(data / seq / f"label_{k}.nii.gz")
            for z in range(lab.shape[0]):
                present = [n for n, v in LABELS.items() if v and (lab[z] == v).any()]
                if not present:
                    continue
                records.append(SliceRecord(f"{seq}{k:03d}", f"{seq}/{k:03d}", z, str(data / seq / f"image_{k}.nii.gz"),
                                           info.key, str(data / seq / f"label_{k}.nii.gz") if labelled else None,
                                           info.attributes, info.region, present, dict(LABELS), [1.25, 1.25],
                                           f"MSCMR_{seq}"))
    return write_index(records, out)


def vae_quality(gen: Path, index: Path, resolution: int) -> dict:
    from diffusers import AutoencoderKL
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from mrgen_nnunet.generator.dataset import load_slice_set

    vae = AutoencoderKL.from_pretrained(str(gen / "vae")).eval()
    data = load_slice_set(index, resolution, quiet=True)
    psnr, ssim = [], []
    with torch.no_grad():
        for i in range(0, len(data), 16):
            x = torch.from_numpy(data.images[i:i + 16]).unsqueeze(1)
            y = vae(x).sample.clamp(-1, 1)
            for a, b in zip(x[:, 0].numpy(), y[:, 0].numpy(), strict=True):
                a, b = (a + 1) / 2, (b + 1) / 2
                psnr.append(peak_signal_noise_ratio(a, b, data_range=1.0))
                ssim.append(structural_similarity(a, b, data_range=1.0))
    return {"slices": len(psnr), "psnr_db": float(np.mean(psnr)), "ssim": float(np.mean(ssim))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--preset", default="tiny")
    a = ap.parse_args()
    from mrgen_nnunet.generator.train import (
        TrainOptions,
        save_grid,
        train_autoencoder,
        train_mask,
        train_text,
    )

    a.out.mkdir(parents=True, exist_ok=True)
    train_index = build_index(a.data, a.out / "train_index.jsonl", range(1, 21), "bSSFP", "LGE")
    test_index = build_index(a.data, a.out / "test_index.jsonl", range(21, 26), "bSSFP", "LGE")
    gen = a.out / "generator"
    opts = TrainOptions(steps=a.steps, batch_size=a.batch_size, seed=0)
    results = {"machine": f"{torch.get_num_threads()} threads, cuda={torch.cuda.is_available()}",
               "preset": a.preset, "resolution": a.resolution, "steps": a.steps, "batch_size": a.batch_size}
    for stage, fn in (("autoencoder", lambda: train_autoencoder(train_index, gen, a.preset, a.resolution, opts)),
                      ("text", lambda: train_text(train_index, gen, a.preset, a.resolution, opts)),
                      ("mask", lambda: train_mask(train_index, gen, "LGE", a.preset, a.resolution, opts))):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        losses = [float(r.split(",")[1]) for r in (gen / "logs" / f"{stage}_loss.csv").read_text(encoding="utf-8").split()[1:]]
        k = max(1, len(losses) // 10)
        results[stage] = {"seconds_incl_loading_and_validation": round(dt, 1),
                          "steps_per_s": round(a.steps / dt, 3),
                          "loss_first10pct": float(np.mean(losses[:k])), "loss_last10pct": float(np.mean(losses[-k:]))}
    results["vae_test_21_25"] = vae_quality(gen, test_index, a.resolution)

    from mrgen_nnunet.generator.dataset import load_slice_set
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    pipe = MRGenPipeline.from_pretrained(gen)
    test = load_slice_set(test_index, a.resolution, quiet=True)
    src = np.flatnonzero(test.has_label)[:: max(1, int(test.has_label.sum()) // 8)][:8]
    lge = resolve_modality("LGE")
    prompts = [build_prompt(lge.key, lge.attributes, lge.region, test.records[i].organs) for i in src]
    t0 = time.perf_counter()
    out = pipe(prompts, pipe.encode_masks(test.label_maps[src]), num_inference_steps=50, guidance_scale=7.0,
               generator=[torch.Generator().manual_seed(int(i)) for i in src])
    results["sampling_s_per_image_50_ddim_steps"] = round((time.perf_counter() - t0) / len(src), 2)
    masks = pipe.encode_masks(test.label_maps[src])
    save_grid(torch.cat([torch.from_numpy(test.images[src]).unsqueeze(1), masks, out.images]),
              a.out / "stage2_samples_bssfp_masks_to_lge.png", nrow=len(src))
    (a.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
