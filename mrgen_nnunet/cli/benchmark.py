"""`mrgen-nnunet benchmark` (not implemented yet)."""

from mrgen_nnunet.errors import NotReadyError


def benchmark() -> None:
    """benchmark (not implemented yet)."""
    raise NotReadyError("'benchmark' is not implemented yet")
