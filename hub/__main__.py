"""``python -m hub`` runs the CLI."""

from hub.cli import app

app(prog_name="hub")
