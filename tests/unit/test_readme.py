"""The README's configuration table is what `hub settings --markdown` prints: every setting of
every registered connector, documented, and no setting the code no longer has."""

from __future__ import annotations

import re
from pathlib import Path

from hub.cli.config import markdown, setting_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_lists_exactly_the_settings_the_models_have():
    text = README.read_text(encoding="utf-8")
    block = re.search(r"<!-- settings:begin -->\n(.*?)<!-- settings:end -->", text, re.S)
    assert block is not None, "README lacks the settings block"
    assert block.group(1) == markdown(), "README is stale: paste `hub settings --markdown` between the markers"


def test_every_setting_says_what_it_means():
    undocumented = [row["variable"] for row in setting_rows() if not row["meaning"].strip()]
    assert undocumented == []
