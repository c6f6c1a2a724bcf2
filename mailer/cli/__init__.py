"""The admin CLI: the Typer app, one module per command group, output beside its command."""

from mailer.cli.commands import app, main

__all__ = ["app", "main"]
