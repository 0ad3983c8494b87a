"""`mrgen-nnunet demo` (not implemented yet)."""

from mrgen_nnunet.errors import NotReadyError


def demo() -> None:
    """demo (not implemented yet)."""
    raise NotReadyError("'demo' is not implemented yet")
