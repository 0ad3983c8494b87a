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


def test_torch_load_always_weights_only():
    bad = [(p, n) for p, n, c in _calls(lambda f: f.endswith("torch.load") or f == "load" and False)
           if not (isinstance(_kw(c, "weights_only"), ast.Constant) and _kw(c, "weights_only").value is True)]
    assert bad == []


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
