"""`mrgen-nnunet evaluate` (not implemented yet)."""

from mrgen_nnunet.errors import NotReadyError


def evaluate() -> None:
    """evaluate (not implemented yet)."""
    raise NotReadyError("'evaluate' is not implemented yet")
