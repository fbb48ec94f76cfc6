"""``churn rollout``: see and overrule a rollout, compare a shadow with the champion."""

from __future__ import annotations

import typer

rollout_app = typer.Typer(
    help="Safe rollout: see and overrule a progressive rollout, compare a shadow with the champion.",
    no_args_is_help=True,
)
