"""`mrgen-nnunet synthesize` (not implemented yet)."""

from mrgen_nnunet.errors import NotReadyError


def synthesize() -> None:
    """synthesize (not implemented yet)."""
    raise NotReadyError("'synthesize' is not implemented yet")
