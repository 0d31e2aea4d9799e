"""Kingdee and WeCom share no plumbing: whatever both need lives once in connectors/kit.

A cheap duplicate scan (the idea of the ``duplicates`` tool, restricted to what matters
here): every module of connectors/kingdee and connectors/wecom outside their sandboxes is
cut into lines of code — comments, docstrings, blank lines, imports and lines without a
name (lone punctuation, the entries of ``__all__``) left out — reduced to their *shape*:
names, strings and numbers blanked, keywords kept. Every run of :data:`WINDOW` such lines
of one connector is looked up in the other. A hit is a block written twice across
connectors (a token cache, a status classifier, a paging loop, a client's lifecycle),
renamed or not, that belongs in the kit.

Exempt: ``connector.py``, each connector's registry entry. Both build the same
``ConnectorSpec(system=…, title=…, settings_model=…, …)`` by design — a declaration, like
a dlt source config, not plumbing. Likewise the entries of a vendor code table
(``40014: kit.CodeRule(AuthExpiredError, "…")``): each vendor's table is its own data in
the kit's one shape, which is the point of the kit. And a constant bound to one literal
(``SYSTEM = "yonyou"``, ``ORDER_APPROVAL = "order.approval"``): a run of named constants is a
list of facts, not a block of logic.
"""

from __future__ import annotations

import io
import itertools
import keyword
import tokenize
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "connectors"
WINDOW = 6
_SKIPPED = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}

Location = tuple[str, int]


def code_lines(source: str) -> list[tuple[int, str]]:
    """(line number, normalized text) of each physical line that carries code (a name)."""
    statements: list[list[tokenize.TokenInfo]] = [[]]
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NEWLINE:
            statements.append([])
        elif token.type not in _SKIPPED:
            statements[-1].append(token)
    lines: dict[int, list[tokenize.TokenInfo]] = defaultdict(list)
    for tokens in statements:
        if not tokens or all(t.type == tokenize.STRING for t in tokens):
            continue  # empty, or a docstring / bare string
        if tokens[0].type == tokenize.NAME and tokens[0].string in ("import", "from"):
            continue
        for token in tokens:
            lines[token.start[0]].append(token)
    for number in [n for n, tokens in lines.items() if _code_table_entry(tokens)]:
        del lines[number]
    shaped = [(number, " ".join(_normalized(t) for t in tokens)) for number, tokens in sorted(lines.items())
              if any(t.type == tokenize.NAME for t in tokens)]  # not lone punctuation or a literal in a list
    return [(number, text) for number, text in shaped if text not in _CONSTANTS]


_CONSTANTS = {'N = "S"', "N = 0", "N = - 0"}  # a name bound to one literal: a declaration


def _code_table_entry(tokens: list[tokenize.TokenInfo]) -> bool:
    """``<code>: kit.CodeRule(…),`` — one entry of a vendor's code table (a declaration)."""
    texts = [t.string for t in tokens]
    start = 1 if texts[:1] == ["-"] else 0
    return (len(texts) > start + 1 and tokens[start].type == tokenize.NUMBER and texts[start + 1] == ":"
            and "CodeRule" in texts)


def _normalized(token: tokenize.TokenInfo) -> str:
    if token.type == tokenize.NAME:
        return token.string if keyword.iskeyword(token.string) or token.string == "self" else "N"
    return '"S"' if token.type == tokenize.STRING else "0" if token.type == tokenize.NUMBER else token.string


def windows(files: dict[str, str]) -> dict[tuple[str, ...], list[Location]]:
    """Every run of WINDOW code lines → where it stands."""
    found: dict[tuple[str, ...], list[Location]] = defaultdict(list)
    for name, source in files.items():
        lines = code_lines(source)
        for start in range(len(lines) - WINDOW + 1):
            run = lines[start:start + WINDOW]
            found[tuple(text for _, text in run)].append((name, run[0][0]))
    return found


def shared_blocks(left: dict[str, str], right: dict[str, str]) -> list[tuple[Location, Location]]:
    """Pairs of places where the same WINDOW-line run stands on both sides."""
    right_windows = windows(right)
    return [(here, there) for run, places in windows(left).items() if run in right_windows
            for here in places[:1] for there in right_windows[run][:1]]


def connector_sources(name: str) -> dict[str, str]:
    """The connector's modules outside its sandbox, by path relative to connectors/."""
    folder = ROOT / name
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8")
            for path in sorted(folder.rglob("*.py"))
            if "sandbox" not in path.relative_to(folder).parts and path.name != "connector.py"}


def connectors() -> list[str]:
    """Every connector folder (the kit is where shared code goes, so it is not one)."""
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "kit")


@pytest.mark.parametrize(("left", "right"), list(itertools.combinations(connectors(), 2)))
def test_no_two_connectors_share_a_block(left: str, right: str) -> None:
    # (kingdee, wecom) is the pair with code today; dingtalk and yonyou join as they grow
    assert shared_blocks(connector_sources(left), connector_sources(right)) == []


def test_the_scan_reads_each_connectors_modules_but_not_its_sandbox_or_registry_entry() -> None:
    kingdee = connector_sources("kingdee")
    assert {"kingdee/client.py", "kingdee/streams.py", "kingdee/signing.py"} <= set(kingdee)
    assert not any("sandbox" in name or name.endswith("connector.py") for name in kingdee)
    assert {"kingdee", "wecom"} <= set(connectors())


COPIED = '''
def classify(response, call):
    """Docstrings and comments do not count."""
    status = response.status_code
    if status >= 500 or status == 408:
        raise RetryableError(f"HTTP {status}", **call.context(str(status)))
    if status == 429:
        raise RateLimitedError("slow down", retry_after=60.0, **call.context("429"))
    if status >= 400:
        raise PermanentError(f"HTTP {status}", **call.context(str(status)))
'''


def test_the_scan_finds_a_block_written_again_with_other_names_messages_and_comments() -> None:
    # given the same classifier in two connectors, renamed and reworded
    elsewhere = COPIED.replace('"slow down"', '"rate limited by the gateway"').replace("60.0", "30.0")
    elsewhere = "# a comment on top\nimport json\n\n" + elsewhere.replace("    status =", "    # why\n    status =")
    elsewhere = elsewhere.replace("status", "code").replace("call", "where").replace("classify", "check_http")
    # then the scan pairs them; and it pairs nothing with unrelated code
    pairs = shared_blocks({"a.py": COPIED}, {"b.py": elsewhere})
    assert pairs[0] == (("a.py", 2), ("b.py", 5)) and len(pairs) == 3  # 8 code lines: 3 runs of 6
    assert shared_blocks({"a.py": COPIED}, {"c.py": "def f(x):\n    return [x, x]\n" * 6}) == []
