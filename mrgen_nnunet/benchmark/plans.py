"""One nnU-Net plan for every benchmark row: plan once on the real source data, copy the plan to every row.

Why: rows differ only in their training images. If each row were planned on its own data, nnU-Net could pick a
different patch size, batch size, network depth or normalisation per row, and the table would compare plans, not
data. All training sets are 2D slice datasets (one dimensionality: no 2D/3D mixing, CONTRACTS §2), so the plan's
`2d` configuration is what every row trains and predicts with.

How (plain nnU-Net tools, nothing patched):
1. `nnUNetv2_extract_fingerprint` on every row dataset (the trainer copies each dataset's own fingerprint);
2. `nnUNetv2_plan_experiment` on the reference (source-only) dataset, with `-overwrite_target_spacing` when a
   coarser in-plane spacing is asked for (the CPU profile: 2.5 mm turns MS-CMRSeg's 192² patch into 96²; the
   planner derives the 2d spacing from that target, so network depth and batch size follow), saved under its own
   plans name so nnU-Net's default plans stay untouched;
3. `nnUNetv2_move_plans_between_datasets` to every other row (with its dataset.json, as the planner would copy), then `nnUNetv2_preprocess -c 2d` for each.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

from mrgen_nnunet.trainers.nnunet_run import find_raw_dataset, run_nnunet


def plans_name(spacing_mm: float | None) -> str:
    """The plans identifier used by every row, e.g. "mrgenPlans_2.5mm" (or "mrgenPlans" at native spacing)."""
    return "mrgenPlans" if spacing_mm is None else f"mrgenPlans_{spacing_mm:g}mm"


def _planner_env(env: Mapping[str, str]) -> dict[str, str]:
    # nnU-Net's planning tools call torch.set_num_threads(nnUNet_n_proc_DA), which refuses 0
    return {**env, "nnUNet_n_proc_DA": "1"} if env.get("nnUNet_n_proc_DA") == "0" else dict(env)


def is_planned(raw: Path, plans: str, env: Mapping[str, str]) -> bool:
    """Whether raw dataset folder `raw` has been preprocessed with `plans` (2d)."""
    pre = Path(env["nnUNet_preprocessed"]) / Path(raw).name
    return (pre / f"{plans}.json").is_file() and (pre / f"{plans}_2d").is_dir()


def shared_plans(reference_id: int, other_ids: list[int], env: Mapping[str, str], spacing_mm: float | None,
                 log_dir: Path) -> str:
    """Plan on `reference_id`, copy the plan to `other_ids`, preprocess all with `2d`. Returns the plans name.

    Datasets already preprocessed with this plans name are skipped (benchmark resume).
    """
    env = _planner_env(env)
    pre = Path(env["nnUNet_preprocessed"])
    name = plans_name(spacing_mm)
    for dataset_id in [reference_id, *other_ids]:
        raw = find_raw_dataset(dataset_id, env)
        if is_planned(raw, name, env):
            continue
        run_nnunet(["nnUNetv2_extract_fingerprint", "-d", str(dataset_id), "-np", "1",
                    "--verify_dataset_integrity"], env, log_dir / f"{raw.name}_fingerprint.log",
                   description=f"fingerprint {raw.name}")
        if dataset_id == reference_id:
            args = ["nnUNetv2_plan_experiment", "-d", str(dataset_id), "-overwrite_plans_name", name]
            if spacing_mm is not None:
                fingerprint = json.loads((pre / raw.name / "dataset_fingerprint.json").read_text(encoding="utf-8"))
                through_plane = max(s[0] for s in fingerprint["spacings"])
                args += ["-overwrite_target_spacing", str(through_plane), str(spacing_mm), str(spacing_mm)]
            run_nnunet(args, env, log_dir / f"{raw.name}_plan.log", description=f"plan {raw.name}")
        else:
            # what nnUNetv2_plan_experiment would do: the preprocessor reads dataset.json from here
            shutil.copyfile(raw / "dataset.json", pre / raw.name / "dataset.json")
            run_nnunet(["nnUNetv2_move_plans_between_datasets", "-s", str(reference_id), "-t", str(dataset_id),
                        "-sp", name, "-tp", name], env, log_dir / f"{raw.name}_move_plans.log",
                       description=f"copy plan to {raw.name}")
        run_nnunet(["nnUNetv2_preprocess", "-d", str(dataset_id), "-plans_name", name, "-c", "2d", "-np", "1"],
                   env, log_dir / f"{raw.name}_preprocess.log", description=f"preprocess {raw.name}")
    return name
