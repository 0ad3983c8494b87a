"""Run the real nnU-Net v2 command-line tools as subprocesses, with an explicit environment.

Every call takes the `env` dict from `nnunet_environment` (nnUNet_raw / _preprocessed / _results, the shim folder in
nnUNet_extTrainer) and runs an argument list, never a shell string. Output goes to a log file (next to the results
when known); a rich progress bar follows nnU-Net's "Epoch N" lines. A failing tool raises one-line MRGenError
naming the log.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from mrgen_nnunet.errors import MRGenError
from mrgen_nnunet.trainers.shim import trainer_path


def nnunet_environment(raw: str | os.PathLike, preprocessed: str | os.PathLike, results: str | os.PathLike,
                       n_proc_da: int | None = None, n_proc: int | None = None,
                       base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A full environment for nnU-Net subprocesses.

    `base` is the environment to extend (default: this process's, passed through unchanged otherwise). Sets the
    three nnU-Net folders (created if absent), prepends the trainer shim folder to nnUNet_extTrainer and sets
    nnUNet_n_proc_DA when `n_proc_da` is given (0 = augment in the main process: best on 2-core machines) and
    nnUNet_def_n_proc (worker pools of the final validation and export) when `n_proc` is given — its default of 8
    spawned workers costs over a minute on a busy 2-core machine.
    """
    env = dict(os.environ if base is None else base)
    for key, path in (("nnUNet_raw", raw), ("nnUNet_preprocessed", preprocessed), ("nnUNet_results", results)):
        Path(path).mkdir(parents=True, exist_ok=True)
        env[key] = str(Path(path).resolve())
    ext = [str(trainer_path())] + [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep)
                                    if p and p != str(trainer_path())]
    env["nnUNet_extTrainer"] = os.pathsep.join(ext)
    if n_proc_da is not None:
        env["nnUNet_n_proc_DA"] = str(int(n_proc_da))
    if n_proc is not None:
        env["nnUNet_def_n_proc"] = str(int(n_proc))
    return env


def default_device() -> str:
    """'cuda' when a CUDA device is visible, else 'mps' on Apple silicon, else 'cpu'."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def find_raw_dataset(dataset_id: int | str, env: Mapping[str, str]) -> Path:
    """The raw folder `DatasetNNN_*` of `dataset_id` (id or name, `nnunet_raw.find_dataset`) with a dataset.json."""
    from mrgen_nnunet.data.nnunet_raw import find_dataset

    folder = find_dataset(env["nnUNet_raw"], dataset_id)
    if not (folder / "dataset.json").is_file():
        raise MRGenError("dataset has no dataset.json", folder, "write it with mrgen-nnunet convert or "
                         "nnunetv2.dataset_conversion.generate_dataset_json")
    return folder


def model_folder(results: str | os.PathLike, dataset: str, trainer: str, plans: str = "nnUNetPlans",
                 configuration: str = "2d") -> Path:
    """nnU-Net's results folder of a trained model: `results/DatasetNNN_X/{trainer}__{plans}__{configuration}`."""
    return Path(results) / dataset / f"{trainer}__{plans}__{configuration}"


def _executable(name: str, env: Mapping[str, str]) -> str:
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name, path=env.get("PATH"))
    if found is None:
        raise MRGenError(f"{name} not found", "PATH", "install nnunetv2 into this Python environment")
    return found


def run_nnunet(args: list[str], env: Mapping[str, str], log_file: Path, total_epochs: int | None = None,
               description: str = "", progress: bool = True) -> None:
    """Run one nnU-Net CLI (`args[0]` is its name), log to `log_file`, raise MRGenError on failure.

    Trainings (`total_epochs` given) show their epochs: a rich bar on a terminal, else a plain line every ~30 s
    (progress.StepProgress); `progress=False` (several runs side by side in threads: rich allows one live
    display) always prints plain lines.
    Called from the main thread, the tool runs in its own process group (with its data-augmentation workers),
    killed whole when this process gets SIGTERM/SIGINT or an exception, so that no orphaned trainer keeps running.
    From another thread (no signal handler possible there) it stays in the caller's group, which a terminal's
    Ctrl-C or a group kill reaches; an exception still kills it."""
    import contextlib
    import signal
    import subprocess
    import threading

    from mrgen_nnunet.progress import StepProgress

    def stop(signum, frame):  # SIGTERM -> an exception, so that the group is killed below
        raise KeyboardInterrupt

    log_file = Path(log_file)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    cmd = [_executable(args[0], env), *args[1:]]
    epoch_re = re.compile(r"^Epoch (\d+)")
    with open(log_file, "w", encoding="utf-8") as log, \
            StepProgress(description or args[0], total=total_epochs or 0, quiet=total_epochs is None,
                         plain=None if progress else True, unit="epoch") as bar:
        main_thread = threading.current_thread() is threading.main_thread()
        first_epoch = None
        proc = subprocess.Popen(cmd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                encoding="utf-8", errors="replace", start_new_session=main_thread)
        previous = signal.signal(signal.SIGTERM, stop) if main_thread else None
        try:
            for line in proc.stdout:
                log.write(line)
                m = epoch_re.match(line.split(": ", 1)[-1].strip())
                if m:  # "Epoch N" starts epoch N: N epochs are done
                    if first_epoch is None:  # a resumed training starts at its checkpoint's epoch
                        first_epoch = bar.start = int(m.group(1))
                    bar.update(int(m.group(1)))
            code = proc.wait()
            if code == 0 and first_epoch is not None:
                bar.update(bar.total)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL) if main_thread else proc.kill()
            proc.wait()
            raise
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, previous)
    if code != 0:
        text = log_file.read_text(encoding="utf-8")
        if "Could not find requested nnunet trainer" in text:
            trainer = args[args.index("-tr") + 1] if "-tr" in args else "?"
            raise MRGenError(f"unknown trainer {trainer!r}", log_file, "use nnUNetTrainer, nnUNetTrainerMRGen or a "
                             "short variant such as nnUNetTrainerMRGen_5epochs_10it")
        last = [line for line in text.strip().splitlines() if line.strip()][-1:] or ["no output"]
        raise MRGenError(f"{args[0]} failed with exit code {code}: {last[0][:200]}", log_file, "see the log")


def plan_and_preprocess(dataset_id: int, env: Mapping[str, str], configurations: tuple[str, ...] = ("2d",),
                        num_processes: int = 1, log_file: str | os.PathLike | None = None) -> Path:
    """`nnUNetv2_plan_and_preprocess -d ID -c ... --verify_dataset_integrity`. Returns the preprocessed folder.

    nnUNet_n_proc_DA=0 (right for training on small machines) is raised to 1 here: nnU-Net's planner passes it to
    torch.set_num_threads, which refuses 0.
    """
    raw = find_raw_dataset(dataset_id, env)
    if env.get("nnUNet_n_proc_DA") == "0":  # the planner calls torch.set_num_threads(n_proc_DA): 0 crashes it
        env = {**env, "nnUNet_n_proc_DA": "1"}
    log = Path(log_file) if log_file else Path(env["nnUNet_preprocessed"]) / f"{raw.name}_plan_and_preprocess.log"
    run_nnunet(["nnUNetv2_plan_and_preprocess", "-d", str(int(dataset_id)), "-npfp", str(num_processes),
                "-c", *configurations,
                "-np", *([str(num_processes)] * len(configurations)), "--verify_dataset_integrity"],
               env, log, description=f"plan+preprocess {raw.name}")
    return Path(env["nnUNet_preprocessed"]) / raw.name


def train(dataset_id: int, trainer: str, fold: int | str, env: Mapping[str, str], configuration: str = "2d",
          device: str = "cpu", plans: str = "nnUNetPlans", extra_args: tuple[str, ...] = (),
          progress: bool = True) -> Path:
    """`nnUNetv2_train ID CONFIG FOLD -tr TRAINER -device DEVICE`. Returns the fold's output folder."""
    raw = find_raw_dataset(dataset_id, env)
    pre = Path(env["nnUNet_preprocessed"]) / raw.name
    if not (pre / f"{plans}.json").is_file():
        raise MRGenError(f"dataset {raw.name} is not planned", pre, "run plan_and_preprocess "
                         "(nnUNetv2_plan_and_preprocess) first")
    out = model_folder(env["nnUNet_results"], raw.name, trainer, plans, configuration) / f"fold_{fold}"
    match = re.search(r"_(\d+)epochs", trainer)
    run_nnunet(["nnUNetv2_train", str(int(dataset_id)), configuration, str(fold), "-tr", trainer, "-p", plans,
                "-device", device, *extra_args],
               env, Path(env["nnUNet_results"]) / raw.name / f"{trainer}_{configuration}_fold{fold}_train.log",
               total_epochs=int(match.group(1)) if match else 1000,  # nnU-Net's default schedule
               description=f"train {raw.name} {trainer} fold {fold}",
               progress=progress)
    return out


def predict(dataset_id: int, input_dir: str | os.PathLike, output_dir: str | os.PathLike, trainer: str,
            env: Mapping[str, str], fold: int | str = 0, configuration: str = "2d", device: str = "cpu",
            plans: str = "nnUNetPlans", checkpoint: str = "checkpoint_final.pth") -> Path:
    """`nnUNetv2_predict -i IN -o OUT -d ID -c CONFIG -f FOLD -tr TRAINER -device DEVICE`. Returns `output_dir`.

    Input files are named `CASE_0000.nii.gz`; outputs `CASE.nii.gz` on the input's own grid (a 2d model predicts a
    3D volume slice by slice and writes it back as a 3D volume).
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir() or not any(input_dir.iterdir()):
        raise MRGenError("no input images to predict", input_dir, "point --input at a folder of CASE_0000.nii.gz")
    model = model_folder(env["nnUNet_results"], find_raw_dataset(dataset_id, env).name, trainer, plans,
                         configuration) / f"fold_{fold}" / checkpoint
    if not model.is_file():
        raise MRGenError(f"no trained model {checkpoint}", model.parent, "train this trainer/configuration/fold first")
    output_dir.mkdir(parents=True, exist_ok=True)
    run_nnunet(["nnUNetv2_predict", "-i", str(input_dir), "-o", str(output_dir), "-d", str(int(dataset_id)),
                "-c", configuration, "-f", str(fold), "-tr", trainer, "-p", plans, "-device", device,
                "-chk", checkpoint, "-npp", "1", "-nps", "1", "--disable_progress_bar"],
               env, output_dir / "predict.log", description=f"predict {trainer}")
    return output_dir
