"""Reading the pages back in tests: elements marked ``data-k`` with their visible text.

The templates mark every figure a test checks with ``data-k`` (and ``data-currency`` /
``data-bucket`` where needed), so the tests read the same text a person sees without
depending on layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser

from hub.web.formatting import parse_money

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


@dataclass
class Element:
    """A marked element: its tag, attributes and whitespace-normalised text."""

    tag: str
    attrs: dict[str, str]
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        # text nodes joined with a space: "XSDD0001" and its source line are two words
        return " ".join(" ".join(self.parts).split())

    @property
    def amount(self) -> Decimal:
        return parse_money(self.text)


class _Scanner(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, Element | None]] = []
        self.marked: list[Element] = []
        self.headings: list[str] = []
        self.links: list[str] = []
        self._heading: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        if tag in _VOID:
            return
        element = Element(tag, values) if "data-k" in values else None
        if element is not None:
            self.marked.append(element)
        if tag in ("h1", "h2", "h3"):
            self._heading = []
        self.stack.append((tag, element))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3") and self._heading is not None:
            self.headings.append(" ".join("".join(self._heading).split()))
            self._heading = None
        # pop to the matching tag (tolerates the odd unclosed element)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data: str) -> None:
        for _, element in self.stack:
            if element is not None:
                element.parts.append(data)
        if self._heading is not None:
            self._heading.append(data)


@dataclass
class Page:
    """A scanned page."""

    marked: list[Element]
    headings: list[str]
    links: list[str]

    def all(self, key: str, **attrs: str) -> list[Element]:
        """Every element with ``data-k=key`` and the given ``data-*`` attributes."""
        return [e for e in self.marked if e.attrs.get("data-k") == key
                and all(e.attrs.get(f"data-{k}") == v for k, v in attrs.items())]

    def one(self, key: str, **attrs: str) -> Element:
        """Exactly one element with ``data-k=key`` (and attributes)."""
        found = self.all(key, **attrs)
        assert len(found) == 1, f"expected one data-k={key} {attrs}, found {len(found)}"
        return found[0]


def scan(html: str) -> Page:
    """Scan an HTML document."""
    scanner = _Scanner()
    scanner.feed(html)
    scanner.close()
    return Page(scanner.marked, scanner.headings, scanner.links)
