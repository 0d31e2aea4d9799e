"""`hub settings`: every setting, its meaning and default (and the value in effect).

``hub settings --markdown`` prints the table the README carries between its
``settings:begin``/``settings:end`` markers; a test keeps the two equal.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pydantic import BaseModel, SecretStr

from hub.cli.base import app, console, failures_as_one_line, print_json, settings
from hub.cli.tables import Column, print_table


def setting_rows() -> list[dict[str, Any]]:
    """Every ``HUB_`` variable with its meaning, default and whether it is a secret."""
    from hub.registry import connector, systems
    from hub.settings import ENV_PREFIX, Settings, unwrap_optional

    rows: list[dict[str, Any]] = []

    def walk(model: type[BaseModel], prefix: str, section: str, skip: set[str]) -> None:
        for name, info in model.model_fields.items():
            if name in skip:
                continue
            annotation = unwrap_optional(info.annotation)
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                walk(annotation, f"{prefix}{name.upper()}__", section, set())
                continue
            default = info.get_default(call_default_factory=False)
            rows.append({"variable": f"{prefix}{name.upper()}", "section": section,
                         "meaning": info.description or "", "secret": annotation is SecretStr,
                         "default": _shown(default, info.default_factory is not None),
                         "path": [*prefix[len(ENV_PREFIX):].lower().split("__"), name]})

    walk(Settings, ENV_PREFIX, "hub", {"connectors"})
    for system in systems():
        walk(connector(system).settings_model, f"{ENV_PREFIX}{system.upper()}__", system, set())
    return rows


def _shown(default: Any, computed: bool) -> str:
    if default is None or computed:
        return "—"
    return str(default).lower() if isinstance(default, bool) else str(default)


def markdown() -> str:
    """The README's configuration table."""
    lines = ["| variable | meaning | default |", "|---|---|---|"]
    for row in setting_rows():
        meaning = row["meaning"] + (" (secret: environment only)" if row["secret"] else "")
        default = row["default"] if row["default"] == "—" else f"`{row['default']}`"
        lines.append(f"| `{row['variable']}` | {meaning} | {default} |")
    return "\n".join(lines) + "\n"


@app.command("settings")
def show_settings(
    as_markdown: Annotated[bool, typer.Option("--markdown", help="The README's table (defaults only).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Every HUB_* setting: meaning, default and the value in effect (secrets: set or not)."""
    with failures_as_one_line():
        if as_markdown:
            print(markdown(), end="")
            return
        config = settings()
        rows = setting_rows()
        for row in rows:
            row["value"] = _current(config, row["path"])
    if as_json:
        print_json([{k: v for k, v in row.items() if k != "path"} for row in rows])
        return
    print_table(console, (Column("variable"), Column("value", "text"), Column("meaning", "text")),
                [[r["variable"], r["value"], r["meaning"]] for r in rows])


def _current(config: Any, path: list[str]) -> str:
    head, *rest = [p for p in path if p]
    node = config.connector(head) if head in config.connectors else getattr(config, head)
    for part in rest:
        node = getattr(node, part)
    if isinstance(node, SecretStr):
        return "set" if node.get_secret_value() else "—"
    return "—" if node is None else str(node)
