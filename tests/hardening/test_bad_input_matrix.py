"""Table-driven bad inputs through `mrgen_nnunet.cli.main.main`: convert, train, synthesize, evaluate, benchmark, segment.

Each case: exit != 0, exactly one stderr line `mrgen-nnunet: error: ...` naming the file/option (`needle`), no
traceback, inputs byte-identical afterwards, outputs absent or unchanged. Converter cases already covered by
tests/dataset_converters/test_bad_inputs.py (truncated/garbage NIfTI, label shape/spacing/values/float, missing
label, label gaps, id clash, corrupt PNG/DICOM, unknown grey level, `..`/absolute/symlink paths, missing field,
invalid JSON) are not repeated here.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from hardening_helpers import make_index, make_source, ring, tree_hash

from mrgen_nnunet.data.io import Geometry, write_image


def _nifti(path: Path, array: np.ndarray, spacing=(1.25, 1.25, 5.0), origin=None, direction=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = sitk.GetImageFromArray(array, isVector=False)
    img.SetSpacing((tuple(spacing) + (1.0,))[: img.GetDimension()])
    if origin is not None:
        img.SetOrigin(origin)
    if direction is not None:
        img.SetDirection(direction)
    sitk.WriteImage(img, str(path))
    return path


def _pair(folder: Path, k: int = 1, image=None, label=None) -> Path:
    """folder/image_k.nii.gz + label_k.nii.gz, (3, 16, 16), labels 1..2 on slices 1-2."""
    lab = np.zeros((3, 16, 16), np.uint8)
    lab[1:, 3:7, 3:7], lab[1:, 9:13, 9:13] = 1, 2
    img = np.random.default_rng(k).random((3, 16, 16)) * 1000
    _nifti(folder / f"image_{k}.nii.gz", img if image is None else image)
    _nifti(folder / f"label_{k}.nii.gz", lab if label is None else label)
    return folder


def _nifti_convert(t: Path, *extra, labels="myo=1,lv=2", sequence="LGE"):
    return ["convert", "nifti", t / "src", "--out-raw", t / "raw", "--dataset-id", 11, "--labels", labels,
            "--sequence", sequence, "--as-slices", *extra]


# ---- convert ------------------------------------------------------------------------------------------------


def c_4d_image(t, g):
    _pair(t / "src", image=np.zeros((2, 3, 16, 16), np.float32))
    return _nifti_convert(t), "image_1.nii.gz"


def c_empty_masks(t, g):
    _pair(t / "src", label=np.zeros((3, 16, 16), np.uint8))
    return _nifti_convert(t), "--all-slices"


def c_label_not_in_map(t, g):
    _pair(t / "src")
    return _nifti_convert(t, labels="myo=1"), "label_1.nii.gz"


def c_origin_mismatch(t, g):
    _pair(t / "src")
    lab = sitk.ReadImage(str(t / "src" / "label_1.nii.gz"))
    lab.SetOrigin((5.0, 0.0, 0.0))
    sitk.WriteImage(lab, str(t / "src" / "label_1.nii.gz"))
    return _nifti_convert(t), "label_1.nii.gz"


def c_direction_mismatch(t, g):
    _pair(t / "src")
    lab = sitk.ReadImage(str(t / "src" / "label_1.nii.gz"))
    lab.SetDirection((0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(lab, str(t / "src" / "label_1.nii.gz"))
    return _nifti_convert(t), "label_1.nii.gz"


def c_unknown_modality(t, g):
    _pair(t / "src")
    return _nifti_convert(t, sequence="PET-CT"), "(--sequence)"


def c_dataset_id_range(t, g):
    _pair(t / "src")
    args = _nifti_convert(t)
    args[args.index(11)] = 1000
    return args, "--dataset-id"


def c_name_traversal(t, g):
    _pair(t / "src")
    return _nifti_convert(t, "--name", "../../evil"), "--name"


def c_corrupt_modality_table(t, g):
    _pair(t / "src")
    (t / "table.json").write_text('{"modalities": {"LGE": ')
    return _nifti_convert(t, "--modality-table", t / "table.json"), "table.json"


def c_out_raw_is_a_file(t, g):
    _pair(t / "src")
    (t / "raw").write_text("not a folder")
    return _nifti_convert(t), "raw"


def c_nnunet_corrupt_dataset_json(t, g):
    folder = make_source(t / "raw0")
    (folder / "dataset.json").write_text('{"labels": {"background": 0,')
    return ["convert", "nnunet", folder, "--index", t / "out" / "index.jsonl"], "dataset.json"


def c_patients_range(t, g):
    _pair(t / "ms" / "LGE")
    return ["convert", "mscmrseg", t / "ms", "--out-raw", t / "raw", "--dataset-id", 5, "--sequence", "LGE",
            "--patients", "1-x"], "--patients"


def c_mrgen_db_label_not_list(t, g):
    root = t / "db"
    (root / "conditional_dataset").mkdir(parents=True)
    (root / "conditional_dataset" / "X_all.json").write_text(json.dumps(
        [{"image_path": "a.png", "label": 7, "modality": "LGE Cardiac MRI", "mask0_path": "m.png"}]))
    return ["convert", "mrgen-db", root, "--out-raw", t / "raw", "--dataset-id", 8], "X_all.json:record 0"


def c_mrgen_db_symlinked_json_dir(t, g):
    root = t / "db"
    (t / "elsewhere").mkdir()
    (t / "elsewhere" / "evil.png").write_bytes(b"\x89PNG")
    (root / "conditional_dataset").mkdir(parents=True)
    os.symlink(t / "elsewhere", root / "imgs")
    (root / "conditional_dataset" / "X_all.json").write_text(json.dumps(
        [{"image_path": "imgs/evil.png", "label": ["liver"], "modality": "T2 SPIR Abdomen MRI",
          "mask0_path": "imgs/evil.png"}]))
    return ["convert", "mrgen-db", root, "--out-raw", t / "raw", "--dataset-id", 8], "escapes"


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) * 2 // 3]))
    else:  # flip one bit in the middle of the compressed stream
        data[len(data) // 2] ^= 0x04
        path.write_bytes(bytes(data))


def c_truncated_image(t, g):
    _pair(t / "src")
    _damage(t / "src" / "image_1.nii.gz", "truncate")
    return _nifti_convert(t), "image_1.nii.gz"


def c_bitflipped_image(t, g):
    _pair(t / "src")
    _damage(t / "src" / "image_1.nii.gz", "flip")
    return _nifti_convert(t), "image_1.nii.gz"


def c_truncated_label(t, g):
    _pair(t / "src")
    _damage(t / "src" / "label_1.nii.gz", "truncate")
    return _nifti_convert(t), "label_1.nii.gz"


def c_nan_image(t, g):
    img = np.random.default_rng(0).random((3, 16, 16)).astype(np.float32)
    img[1, 4, 4] = np.nan
    _pair(t / "src", image=img)
    return _nifti_convert(t), "image_1.nii.gz"


def c_inf_label(t, g):
    lab = np.zeros((3, 16, 16), np.float32)
    lab[1:, 3:7, 3:7], lab[2, 0, 0] = 1, np.inf
    _pair(t / "src", label=lab)
    return _nifti_convert(t), "label_1.nii.gz"


def c_duplicate_case_ids(t, g):
    _pair(t / "src")
    shutil.copy(t / "src" / "image_1.nii.gz", t / "src" / "image_01.nii.gz")
    shutil.copy(t / "src" / "label_1.nii.gz", t / "src" / "label_01.nii.gz")
    return _nifti_convert(t), "image_1.nii.gz"


def c_mscmrseg_duplicate_ids(t, g):
    _pair(t / "ms" / "LGE")
    shutil.copy(t / "ms" / "LGE" / "image_1.nii.gz", t / "ms" / "LGE" / "image_01.nii.gz")
    return ["convert", "mscmrseg", t / "ms", "--out-raw", t / "raw", "--dataset-id", 5, "--sequence", "LGE"], \
        "image_01.nii.gz"


def c_mscmrseg_sequence_folder_disagrees(t, g):
    _pair(t / "ms" / "LGE")
    return ["convert", "mscmrseg", t / "ms" / "LGE", "--out-raw", t / "raw", "--dataset-id", 5,
            "--sequence", "bSSFP"], "--sequence"


def c_chaos_sequence_folder_disagrees(t, g):
    _pair(t / "T1IP")
    return ["convert", "chaos", t / "T1IP", "--out-raw", t / "raw", "--dataset-id", 5,
            "--sequence", "T2-SPIR"], "--sequence"


def c_index_exists(t, g):
    _pair(t / "src")
    (t / "index.jsonl").write_text("keep me\n")
    return _nifti_convert(t, "--index", t / "index.jsonl"), "index.jsonl"


def c_index_is_a_folder(t, g):
    _pair(t / "src")
    (t / "index.jsonl").mkdir()
    return _nifti_convert(t, "--index", t / "index.jsonl"), "--index"


def c_nnunet_index_exists(t, g):
    folder = make_source(t / "raw0")
    (folder / "mrgen_index.jsonl").write_text("keep me\n")
    return ["convert", "nnunet", folder], "mrgen_index.jsonl"


def _mrgen_db(t, modality="LGE Cardiac MRI"):
    root = t / "db"
    (root / "conditional_dataset").mkdir(parents=True)
    (root / "conditional_dataset" / "X_all.json").write_text(json.dumps(
        [{"image_path": "a.png", "label": ["myo"], "modality": modality, "mask0_path": "m.png"}]))
    return ["convert", "mrgen-db", root, "--out-raw", t / "raw", "--dataset-id", 8]


def c_mrgen_db_empty_modality(t, g):
    return _mrgen_db(t, ""), "X_all.json:record 0"


def c_mrgen_db_number_modality(t, g):
    return _mrgen_db(t, 5), "X_all.json:record 0"


def c_mrgen_db_radiopaedia_image_in_root(t, g):
    from PIL import Image

    root = t / "db"
    (root / "radiopaedia_data").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "a.png")
    (root / "radiopaedia_data" / "rp.json").write_text(json.dumps([{"image_path": "a.png", "aux_modality": "LGE"}]))
    return ["convert", "mrgen-db-images", root, "--index", t / "rp.jsonl"], "rp.json:record 0"


def c_mrgen_db_radiopaedia_number_modality(t, g):
    from PIL import Image

    root = t / "db"
    (root / "radiopaedia_data" / "case1").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(root / "radiopaedia_data" / "case1" / "a.png")
    (root / "radiopaedia_data" / "rp.json").write_text(json.dumps(
        [{"image_path": "radiopaedia_data/case1/a.png", "aux_modality": 5}]))
    return ["convert", "mrgen-db-images", root, "--index", t / "rp.jsonl"], "rp.json:record 0"


# ---- train --------------------------------------------------------------------------------------------------


def _train(t, *extra, stage="autoencoder"):
    return ["train", stage, "--index", t / "idx" / "index.jsonl", "--out", t / "gen", "--steps", 1,
            "--resolution", 32, "--batch-size", 2, *extra]


def t_unknown_preset(t, g):
    make_index(t / "idx")
    return _train(t, "--preset", "huge"), "--preset"


def t_missing_index(t, g):
    (t / "idx").mkdir()
    return _train(t), "index.jsonl"


def t_truncated_index(t, g):
    index = make_index(t / "idx")
    index.write_text(index.read_text(encoding="utf-8")[:-40])
    return _train(t), "index.jsonl"


def t_index_points_to_missing_image(t, g):
    make_index(t / "idx")
    (t / "idx" / "LGE1.nii.gz").unlink()
    return _train(t), "LGE1.nii.gz"


def t_index_4d_image(t, g):
    make_index(t / "idx")
    _nifti(t / "idx" / "LGE0.nii.gz", np.zeros((2, 3, 32, 32), np.float32))
    return _train(t), "LGE0.nii.gz"


def t_bad_config(t, g):
    make_index(t / "idx")
    (t / "cfg.toml").write_text("steps = [1,\n")
    return _train(t, "--config", t / "cfg.toml"), "cfg.toml"


def t_unknown_config_key(t, g):
    make_index(t / "idx")
    (t / "cfg.toml").write_text("stepz = 3\n")
    return _train(t, "--config", t / "cfg.toml"), "cfg.toml"


def t_resume_without_checkpoint(t, g):
    make_index(t / "idx")
    return _train(t, "--resume"), "checkpoints"


def t_mixed_precision(t, g):
    make_index(t / "idx")
    return _train(t, "--mixed-precision", "fp8"), "--mixed-precision"


def t_mask_unknown_target(t, g):
    make_index(t / "idx")
    shutil.copytree(g, t / "gen")
    return _train(t, "--target", "PET", stage="mask"), "--target"


def t_zero_steps(t, g):
    make_index(t / "idx")
    args = _train(t)
    args[args.index("--steps") + 1] = 0
    return args, "--steps"


def t_zero_batch_size(t, g):
    make_index(t / "idx")
    args = _train(t)
    args[args.index("--batch-size") + 1] = 0
    return args, "--batch-size"


def t_config_negative_steps(t, g):
    make_index(t / "idx")
    (t / "cfg.toml").write_text("steps = -2\n")
    args = _train(t, "--config", t / "cfg.toml")
    i = args.index("--steps")
    return args[:i] + args[i + 2:], "steps (" + str(t / "cfg.toml")


def t_config_steps_not_a_number(t, g):
    make_index(t / "idx")
    (t / "cfg.toml").write_text('steps = "many"\n')
    args = _train(t, "--config", t / "cfg.toml")
    i = args.index("--steps")
    return args[:i] + args[i + 2:], "cfg.toml"


def t_prompt_dropout_range(t, g):
    make_index(t / "idx")
    return _train(t, "--prompt-dropout", 1.5, stage="text"), "--prompt-dropout"


def t_all_zero_steps(t, g):
    make_index(t / "idx")
    return ["train", "all", "--index", t / "idx" / "index.jsonl", "--out", t / "gen", "--target", "LGE",
            "--steps", 0], "--steps"


def t_out_is_a_file(t, g):
    make_index(t / "idx")
    (t / "gen").write_text("not a folder")
    return _train(t), "gen"


# ---- synthesize ---------------------------------------------------------------------------------------------


def _syn(t, gen, *extra, target="LGE", source="101", out_dataset=502):
    return ["synthesize", "--target", target, "--source", source, "--generator", gen, "--out-raw", t / "raw",
            "--out-dataset", out_dataset, "--samples-per-mask", 1, "--max-tries", 1, "--batch-size", 1,
            "--steps", 1, "--filter", "none", *extra]


def s_unknown_modality(t, g):
    make_source(t / "raw")
    return _syn(t, g, target="PET"), "--target"


def s_missing_generator(t, g):
    make_source(t / "raw")
    return _syn(t, t / "nogen"), "nogen"


def s_unknown_filter(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--filter", "clip"), "--filter"


def s_bad_shard(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--shard", "3of4"), "--shard"


def s_unknown_source(t, g):
    make_source(t / "raw")
    return _syn(t, g, source="999"), "999"


def s_dataset_id_clash(t, g):
    make_source(t / "raw")
    (t / "raw" / "Dataset502_Other" / "imagesTr").mkdir(parents=True)
    return _syn(t, g), "Dataset502_Other"


def s_labels_mismatch(t, g):
    folder = make_source(t / "raw")
    meta = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    meta["labels"] = {"background": 0, "liver": 1, "spleen": 2}
    (folder / "dataset.json").write_text(json.dumps(meta))
    return _syn(t, g), "gen"


def s_mismatched_weights(t, g):
    make_source(t / "raw")
    gen = t / "gen"
    shutil.copytree(g, gen)
    cfg = json.loads((gen / "unet" / "config.json").read_text(encoding="utf-8"))
    cfg["block_out_channels"] = [c * 2 for c in cfg["block_out_channels"]]
    (gen / "unet" / "config.json").write_text(json.dumps(cfg))
    return _syn(t, gen), "unet"


def s_truncated_weights(t, g):
    make_source(t / "raw")
    gen = t / "gen"
    shutil.copytree(g, gen)
    w = gen / "controlnet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    return _syn(t, gen), "controlnet"


def s_pickle_only_weights(t, g):
    import torch

    make_source(t / "raw")
    gen = t / "gen"
    shutil.copytree(g, gen)
    from safetensors.torch import load_file

    w = gen / "vae" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(w)), gen / "vae" / "diffusion_pytorch_model.bin")
    w.unlink()
    return _syn(t, gen), "vae"


def s_corrupt_generator_json(t, g):
    make_source(t / "raw")
    gen = t / "gen"
    shutil.copytree(g, gen)
    (gen / "mrgen_generator.json").write_text("{")
    return _syn(t, gen), "mrgen_generator.json"


def s_source_geometry_mismatch(t, g):
    folder = make_source(t / "raw")
    write_image(ring((30, 40)), Geometry.default(2, (1.25, 1.25)), folder / "labelsTr" / "bSSFP002_z000.nii.gz")
    return _syn(t, g), "bSSFP002_z000"


def s_out_raw_is_a_file(t, g):
    make_source(t / "src")
    (t / "raw").write_text("not a folder")
    return _syn(t, g, source=t / "src" / "Dataset101_SRC"), "raw"


def s_no_out_raw(t, g):
    make_source(t / "raw")
    args = _syn(t, g)
    i = args.index("--out-raw")
    return args[:i] + args[i + 2:], "--out-raw"


def _syn_set(args, option, value):
    args = list(args)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


def s_zero_steps(t, g):
    make_source(t / "raw")
    return _syn_set(_syn(t, g), "--steps", 0), "--steps"


def s_negative_steps(t, g):
    make_source(t / "raw")
    return _syn_set(_syn(t, g), "--steps", -2), "--steps"


def s_negative_guidance(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--guidance", -3), "--guidance"


def s_unknown_scheduler(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--scheduler", "euler"), "--scheduler"


def s_shard_out_of_range(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--shard", "3/2"), "--shard"


def s_min_foreground_above_one(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--min-foreground", 2), "--min-foreground"


def s_iou_above_one(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--iou", 1.5, "--filter", "none"), "--iou"


def s_every_mask_skipped(t, g):
    make_source(t / "raw")
    return _syn(t, g, "--min-foreground", 0.9), "--min-foreground"


def s_out_dataset_zero(t, g):
    make_source(t / "raw")
    return _syn(t, g, out_dataset=0), "--out-dataset"


def s_cuda_without_gpu(t, g):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    make_source(t / "raw")
    return _syn(t, g, "--device", "cuda"), "--device"


def s_malicious_filter_checkpoint(t, g):
    from test_security import _malicious_model_folder

    make_source(t / "raw")
    model = _malicious_model_folder(t / "results", t / "pwned")
    return _syn(t, g, "--filter", "nnunet", "--filter-model", model), "checkpoint_final.pth"


# ---- evaluate -----------------------------------------------------------------------------------------------


def _eval_folders(t):
    lab = np.zeros((4, 16, 16), np.uint8)
    lab[1:3, 4:10, 4:10] = 1
    _nifti(t / "gt" / "LGE021.nii.gz", lab)
    _nifti(t / "pred" / "LGE021.nii.gz", lab)
    return ["evaluate", "--pred", t / "pred", "--gt", t / "gt", "--out", t / "out", "--labels", "background=0,myo=1"]


def e_missing_pred_folder(t, g):
    args = _eval_folders(t)
    shutil.rmtree(t / "pred")
    return args, "pred"


def e_corrupt_prediction(t, g):
    args = _eval_folders(t)
    (t / "pred" / "LGE021.nii.gz").write_bytes(b"\x1f\x8b garbage")
    return args, "LGE021.nii.gz"


def e_bad_labels_option(t, g):
    args = _eval_folders(t)
    return args[:-1] + ["background=0,myo"], "--labels"


def e_geometry_mismatch(t, g):
    args = _eval_folders(t)
    _nifti(t / "pred" / "LGE021.nii.gz", np.zeros((4, 16, 12), np.uint8))
    return args, "LGE021"


def e_4d_prediction(t, g):
    args = _eval_folders(t)
    _nifti(t / "pred" / "LGE021.nii.gz", np.zeros((2, 4, 16, 16), np.uint8))
    return args, "LGE021"


def e_truncated_prediction(t, g):
    args = _eval_folders(t)
    _damage(t / "pred" / "LGE021.nii.gz", "truncate")
    return args, "LGE021.nii.gz"


def e_bitflipped_prediction(t, g):
    args = _eval_folders(t)
    _damage(t / "pred" / "LGE021.nii.gz", "flip")
    return args, "LGE021.nii.gz"


def e_truncated_ground_truth(t, g):
    args = _eval_folders(t)
    _damage(t / "gt" / "LGE021.nii.gz", "truncate")
    return args, "LGE021.nii.gz"


def e_nan_prediction(t, g):
    args = _eval_folders(t)
    pred = np.zeros((4, 16, 16), np.float32)
    pred[0, 0, 0] = np.nan
    _nifti(t / "pred" / "LGE021.nii.gz", pred)
    return args, "LGE021.nii.gz"


def e_extra_prediction(t, g):
    args = _eval_folders(t)
    shutil.copy(t / "pred" / "LGE021.nii.gz", t / "pred" / "LGE099.nii.gz")
    return args, "LGE099"


def e_out_is_a_file(t, g):
    args = _eval_folders(t)
    (t / "out").write_text("not a folder")
    return args, "out"


# ---- benchmark / segment ------------------------------------------------------------------------------------


def b_missing_config(t, g):
    return ["benchmark", t / "none.toml"], "none.toml"


def b_corrupt_toml(t, g):
    (t / "b.toml").write_text('name = "x"\nrows = ["source"\n')
    return ["benchmark", t / "b.toml"], "b.toml"


def b_unknown_row(t, g):
    here = Path(__file__).resolve().parents[2] / "benchmarks" / "configs" / "mscmrseg_bssfp_to_lge.toml"
    shutil.copy(here, t / "b.toml")
    return ["benchmark", t / "b.toml", "--rows", "source,magic"], "--rows"


def b_bad_seeds(t, g):
    here = Path(__file__).resolve().parents[2] / "benchmarks" / "configs" / "mscmrseg_bssfp_to_lge.toml"
    shutil.copy(here, t / "b.toml")
    return ["benchmark", t / "b.toml", "--seeds", "0,one"], "--seeds"


def b_bad_patients(t, g):
    here = Path(__file__).resolve().parents[2] / "benchmarks" / "configs" / "mscmrseg_bssfp_to_lge.toml"
    (t / "b.toml").write_text(here.read_text(encoding="utf-8").replace('patients = "1-20"', 'patients = "1-twenty"', 1))
    return ["benchmark", t / "b.toml"], "1-twenty"


def g_missing_env(t, g):
    return ["segment", "plan", "101"], "nnUNet_raw"


CASES = {f.__name__: f for f in [
    c_4d_image, c_empty_masks, c_label_not_in_map, c_origin_mismatch, c_direction_mismatch,
    c_unknown_modality, c_dataset_id_range, c_name_traversal, c_corrupt_modality_table,
    c_out_raw_is_a_file, c_nnunet_corrupt_dataset_json, c_patients_range,
    c_mrgen_db_label_not_list, c_mrgen_db_symlinked_json_dir,
    c_truncated_image, c_bitflipped_image, c_truncated_label, c_nan_image, c_inf_label, c_duplicate_case_ids,
    c_mscmrseg_duplicate_ids, c_mscmrseg_sequence_folder_disagrees, c_chaos_sequence_folder_disagrees,
    c_index_exists, c_index_is_a_folder, c_nnunet_index_exists, c_mrgen_db_empty_modality,
    c_mrgen_db_number_modality, c_mrgen_db_radiopaedia_image_in_root, c_mrgen_db_radiopaedia_number_modality,
    t_unknown_preset, t_missing_index, t_truncated_index, t_index_points_to_missing_image,
    t_index_4d_image, t_bad_config, t_unknown_config_key, t_resume_without_checkpoint, t_mixed_precision,
    t_mask_unknown_target, t_zero_steps, t_zero_batch_size, t_config_negative_steps, t_config_steps_not_a_number,
    t_prompt_dropout_range, t_all_zero_steps, t_out_is_a_file,
    s_unknown_modality, s_missing_generator, s_unknown_filter, s_bad_shard, s_unknown_source, s_dataset_id_clash,
    s_labels_mismatch, s_mismatched_weights, s_truncated_weights, s_pickle_only_weights, s_corrupt_generator_json,
    s_source_geometry_mismatch, s_no_out_raw, s_out_raw_is_a_file,
    s_zero_steps, s_negative_steps, s_negative_guidance, s_unknown_scheduler, s_shard_out_of_range,
    s_min_foreground_above_one, s_iou_above_one, s_every_mask_skipped, s_out_dataset_zero, s_cuda_without_gpu,
    s_malicious_filter_checkpoint,
    e_missing_pred_folder, e_corrupt_prediction, e_bad_labels_option, e_geometry_mismatch, e_4d_prediction,
    e_truncated_prediction, e_bitflipped_prediction, e_truncated_ground_truth, e_nan_prediction, e_extra_prediction,
    e_out_is_a_file,
    b_missing_config, b_corrupt_toml, b_unknown_row, b_bad_seeds, b_bad_patients,
    g_missing_env,
]}


# cases that fail after synthesis started work on a slice: their hidden work folder stays for a resume; every
# other case (options, files, models checked up front) leaves no `.mrgen-partial-*` behind
RESUMABLE = {"s_source_geometry_mismatch", "s_every_mask_skipped"}  # the latter keeps its candidates.jsonl


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_changes_nothing(case, tmp_path, tiny_generator, cli, monkeypatch):
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.delenv(var, raising=False)
    gen_before = tree_hash(tiny_generator)
    args, needle = CASES[case](tmp_path, tiny_generator)
    before = tree_hash(tmp_path)
    try:
        rc, err = cli(*args)
    finally:
        for p in [tmp_path, *tmp_path.rglob("*")]:
            if p.is_dir() and not p.is_symlink():
                os.chmod(p, 0o755)
    errors = [e for e in err if e.startswith("mrgen-nnunet: error:")]
    assert rc != 0, err
    assert len(errors) == 1 and not any("Traceback" in e for e in err), err
    assert needle in errors[0], errors[0]
    after = tree_hash(tmp_path)
    if case in RESUMABLE:  # a synthesis that failed on a slice keeps its hidden, resumable work folder
        after = {k: v for k, v in after.items() if not k.startswith("raw/.mrgen-partial-")}
    assert after == before, sorted(set(after.items()) ^ set(before.items()))[:6]
    assert not [p for p in tmp_path.rglob(".*") if ".tmp-" in p.name], "staging debris left"
    assert not (tmp_path / "pwned").exists(), "a pickled payload ran"
    assert tree_hash(tiny_generator) == gen_before


def test_nan_inf_refused_and_constant_images_stay_finite(tmp_path):
    """ITK's NIfTI reader would return NaN/Inf voxels as 0; `read_image` refuses them naming the file (also in an
    uncompressed .nii). A constant slice (min = max) normalises to finite values without dividing by zero, and back."""
    from mrgen_nnunet.data.io import read_image
    from mrgen_nnunet.data.normalize import denormalize_slice, normalize_slice
    from mrgen_nnunet.errors import MRGenError

    img = np.random.default_rng(0).random((3, 16, 16)) * 1000
    img[1, 4, 4], img[2, 0, 0] = np.nan, np.inf
    for name in ("nan.nii.gz", "nan.nii"):
        with pytest.raises(MRGenError, match="2 NaN/Inf voxel") as info:
            read_image(_nifti(tmp_path / name, img))
        assert name in str(info.value) and "\n" not in str(info.value)
    img[1, 4, 4], img[2, 0, 0] = 0, 0
    assert np.array_equal(read_image(_nifti(tmp_path / "ok.nii.gz", img))[0], img)
    for value in (0.0, 500.0):
        x, info = normalize_slice(np.full((20, 24), value, np.float32), 32)
        assert x.shape == (32, 32) and np.isfinite(x).all()
        back = denormalize_slice(x, info)
        assert back.shape == (20, 24) and np.isfinite(back).all()
