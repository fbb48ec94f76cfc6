"""``python -m churn`` runs the CLI."""

from churn.cli import main

main()
