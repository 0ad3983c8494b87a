"""`mrgen-nnunet convert` (not implemented yet)."""

import typer

from mrgen_nnunet.errors import NotReadyError

app = typer.Typer(help="convert (not implemented yet).", no_args_is_help=False, invoke_without_command=True)


@app.callback()
def _not_ready() -> None:
    raise NotReadyError("'convert' is not implemented yet")
