"""The one loader for PyTorch model files (.pt/.pth/.bin): `torch.load(weights_only=True)`, which builds tensors
and plain containers only, plus the numpy scalar types nnU-Net's checkpoints hold (its training log and best EMA
Dice are numpy floats). A file asking for anything else — a class, a function such as `os.system` — is refused
before any of it runs. `trust=True` (`--trust-checkpoint`) allows the full pickle for a file from a trusted source,
with a warning, since unpickling can run arbitrary code.
"""

from __future__ import annotations

import pickle
import re
import sys
from pathlib import Path

import numpy as np

from mrgen_nnunet.errors import MRGenError

# numpy scalars (np.float64(0.5) pickles as scalar(dtype, bytes)): data, not code
SAFE_GLOBALS = [np._core.multiarray.scalar, np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType,
                np.dtypes.Int64DType, np.dtypes.Int32DType, np.dtypes.BoolDType]


def load_torch_file(path: str | Path, trust: bool = False, trust_option: str | None = None):
    """The object saved in `path` (a state dict, an nnU-Net checkpoint dict ...), on the CPU. `trust_option`: the
    flag that sets `trust` for this file, named in the refusal."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise MRGenError("model file not found", path, "check the path")
    if trust:
        print(f"mrgen-nnunet: warning: loading {path} with full pickle (--trust-checkpoint): "
              "it can run any code the file contains", file=sys.stderr)
        return torch.load(path, map_location="cpu", weights_only=False)
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = re.search(r"GLOBAL (\S+)", str(exc))
        fix = "use safetensors or a plain state dict"
        if trust_option:
            fix += f"; only for a file from a trusted source pass {trust_option}"
        raise MRGenError(f"refused to unpickle {unsafe[1] if unsafe else 'an object'}: the file holds more than "
                         "tensors and plain data", path, fix) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise MRGenError(f"cannot read model file: {first}", path, "the file is corrupt or truncated; "
                         "re-download or re-train it") from None
