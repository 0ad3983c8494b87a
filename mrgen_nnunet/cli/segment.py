"""`mrgen-nnunet segment` (not implemented yet)."""

import typer

from mrgen_nnunet.errors import NotReadyError

app = typer.Typer(help="segment (not implemented yet).", no_args_is_help=False, invoke_without_command=True)


@app.callback()
def _not_ready() -> None:
    raise NotReadyError("'segment' is not implemented yet")
