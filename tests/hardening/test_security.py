"""Safe weights and no remote code / shell strings: an AST scan of the package and a pickle-only weights file."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest

import mrgen_nnunet

PACKAGE = Path(mrgen_nnunet.__file__).parent
SOURCES = sorted(PACKAGE.rglob("*.py"))


def _calls(name_matches):
    found = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Call) and name_matches(ast.unparse(node.func)):
                found.append((path.relative_to(PACKAGE), node.lineno, node))
    return found


def _kw(node: ast.Call, name: str):
    return next((k.value for k in node.keywords if k.arg == name), None)


def test_scan_sees_the_package():
    assert len(SOURCES) > 40 and _calls(lambda f: f == "torch.load")  # the scan below is not vacuous


def test_torch_load_only_in_the_one_safe_loader():
    """Every torch.load is in mrgen_nnunet/weights.py and has weights_only=True, except the one full-pickle load
    inside `if trust:` (--trust-checkpoint)."""
    loads = _calls(lambda f: f.endswith("torch.load"))
    assert {str(p) for p, _, _ in loads} == {"weights.py"}
    tree = ast.parse((PACKAGE / "weights.py").read_text(encoding="utf-8"))
    trusted = {id(n) for i in ast.walk(tree) if isinstance(i, ast.If) and ast.unparse(i.test) == "trust"
               for n in ast.walk(i)}
    unsafe = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "torch.load"
              and not (isinstance(_kw(n, "weights_only"), ast.Constant) and _kw(n, "weights_only").value is True)]
    assert len(unsafe) == 1 and id(unsafe[0]) in trusted


class _Payload:
    """Unpickling this runs `touch <marker>` (what a hostile checkpoint would do with worse commands)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def _malicious_model_folder(root: Path, marker: Path) -> Path:
    """An nnU-Net model folder whose fold_0/checkpoint_final.pth runs a shell command when unpickled."""
    import json

    import torch

    folder = root / "Dataset101_SRC" / "nnUNetTrainer__nnUNetPlans__2d"
    (folder / "fold_0").mkdir(parents=True)
    (folder / "plans.json").write_text(json.dumps({"configurations": {}}))
    (folder / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "myocardium": 1}}))
    torch.save({"network_weights": _Payload(marker), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "2d"}}, folder / "fold_0" / "checkpoint_final.pth")
    return folder


def test_malicious_nnunet_checkpoint_is_refused_and_never_runs(tmp_path):
    from mrgen_nnunet.errors import MRGenError
    from mrgen_nnunet.filtering.nnunet_filter import NnUNetFilter

    marker = tmp_path / "pwned"
    folder = _malicious_model_folder(tmp_path, marker)
    with pytest.raises(MRGenError, match="refused to unpickle posix.system") as info:
        NnUNetFilter.from_folder(folder)
    assert "checkpoint_final.pth" in str(info.value) and "--trust-checkpoint" in str(info.value)
    assert not marker.exists()
    # the payload is live: the explicit trusted-source escape hatch would run it
    with pytest.raises(Exception):  # noqa: B017 — the fake checkpoint is no model; only the marker matters
        NnUNetFilter.from_folder(folder, trust=True)
    assert marker.exists()


def test_no_pickle_loads_or_remote_code():
    assert _calls(lambda f: f in ("pickle.load", "pickle.loads", "dill.load", "joblib.load")) == []
    remote = [(p, n) for p, n, c in _calls(lambda f: True)
              if isinstance(_kw(c, "trust_remote_code"), ast.Constant) and _kw(c, "trust_remote_code").value]
    assert remote == []
    # also keyword dicts and config mappings the AST check above does not see
    text = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    assert re.search(r"trust_remote_code['\"]?\s*[=:]\s*True", text) is None


def test_no_shell_strings():
    shell = [(p, n) for p, n, c in _calls(lambda f: f.startswith("subprocess.") or f in ("Popen", "run", "call"))
             if isinstance(_kw(c, "shell"), ast.Constant) and _kw(c, "shell").value]
    assert shell == []
    assert _calls(lambda f: f in ("os.system", "os.popen", "commands.getoutput", "subprocess.getoutput")) == []
    # every subprocess gets an argument list, never a string
    strings = [(p, n) for p, n, c in _calls(lambda f: f in ("subprocess.Popen", "subprocess.run", "subprocess.call",
                                                               "subprocess.check_call", "subprocess.check_output"))
               if c.args and isinstance(c.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp))]
    assert strings == []


def test_pickle_only_weights_are_refused_without_unpickling(tiny_generator, tmp_path, monkeypatch):
    """A folder holding only a pickled .bin is refused with a one-line MRGenError; pickle is never called."""
    import pickle

    import torch
    from safetensors.torch import load_file

    from mrgen_nnunet.errors import MRGenError
    from mrgen_nnunet.generator.pipeline import MRGenPipeline

    gen = tmp_path / "gen"
    shutil.copytree(tiny_generator, gen)
    weights = gen / "unet" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(str(weights)), gen / "unet" / "diffusion_pytorch_model.bin")
    weights.unlink()

    def trap(*a, **k):
        raise AssertionError("pickle was used to load weights")

    monkeypatch.setattr(pickle, "load", trap)
    monkeypatch.setattr(pickle, "Unpickler", trap)
    with pytest.raises(MRGenError, match="safetensors") as info:
        MRGenPipeline.from_pretrained(gen)
    assert "\n" not in str(info.value) and "unet" in str(info.value)
