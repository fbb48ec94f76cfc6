"""``churn config``: the effective settings."""

from __future__ import annotations

import typer

from churn.cli.console import out
from churn.config import get_settings, redacted

config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)


@config_app.command("show")
def config_show() -> None:
    """Print the effective settings (defaults overridden by CHURN_* variables) as JSON."""
    out.print_json(data=redacted(get_settings().model_dump(mode="json")))  # no password of a URL is printed
