"""Narrative.div checks: the native stand-in for txt-1/txt-2, whose htmlChecks() no FHIRPath
engine implements (pure).

The div must be well-formed XHTML rooted at <div xmlns="http://www.w3.org/1999/xhtml">,
use only the basic formatting elements the spec allows (no scripts, forms, frames, objects,
head/body, base/link), carry no event-handler attributes, and have some content.
"""

from __future__ import annotations

import re
from html.entities import name2codepoint
from xml.parsers import expat

XHTML_NS = "http://www.w3.org/1999/xhtml"

# The element list the reference (Java) validator accepts for txt-1.
ALLOWED_ELEMENTS = frozenset(
    [
        "p",
        "br",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "a",
        "span",
        "b",
        "em",
        "i",
        "strong",
        "small",
        "big",
        "tt",
        "dfn",
        "q",
        "var",
        "abbr",
        "acronym",
        "cite",
        "blockquote",
        "hr",
        "address",
        "bdo",
        "kbd",
        "sub",
        "sup",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "pre",
        "table",
        "caption",
        "colgroup",
        "col",
        "thead",
        "tr",
        "tfoot",
        "tbody",
        "th",
        "td",
        "code",
        "samp",
        "img",
        "map",
        "area",
    ]
)
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")


def _numeric_entities(text: str) -> str:
    # XHTML narratives routinely use HTML named entities (&nbsp;) that plain XML lacks.
    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in _XML_ENTITIES or name not in name2codepoint:
            return m.group(0)
        return f"&#{name2codepoint[name]};"

    return _ENTITY.sub(replace, text)


class _Checker:
    def __init__(self) -> None:
        self.depth = 0
        self.problem: str | None = None
        self.content = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        ns, _, local = name.rpartition(" ")
        if self.problem:
            pass
        elif self.depth == 0 and (local != "div" or ns != XHTML_NS):
            self.problem = f'the root element must be <div xmlns="{XHTML_NS}">'
        elif ns != XHTML_NS:
            self.problem = f"element <{local}> is not in the XHTML namespace"
        elif local not in ALLOWED_ELEMENTS:
            self.problem = f"element <{local}> is not allowed in a narrative"
        else:
            for attr, value in attrs.items():
                attr_local = attr.rpartition(" ")[2]
                if attr_local.lower().startswith("on"):
                    self.problem = f"event handler attribute '{attr_local}' is not allowed"
                    break
                if value.strip().lower().startswith("javascript:"):
                    self.problem = f"javascript: URL in attribute '{attr_local}' is not allowed"
                    break
        if local == "img":
            self.content = True
        self.depth += 1

    def end(self, name: str) -> None:
        self.depth -= 1

    def text(self, data: str) -> None:
        if not self.content and data.strip():
            self.content = True


def check_xhtml(value: str) -> str | None:
    if not value.lstrip().startswith("<div"):
        return "narrative must be an XHTML <div> element"
    if "&" in value:
        value = _numeric_entities(value)
    checker = _Checker()
    parser = expat.ParserCreate(namespace_separator=" ")
    parser.StartElementHandler = checker.start
    parser.EndElementHandler = checker.end
    parser.CharacterDataHandler = checker.text
    try:
        parser.Parse(value, True)
    except expat.ExpatError as exc:
        return f"narrative is not well-formed XHTML ({exc})"
    if checker.problem:
        return f"narrative: {checker.problem}"
    if not checker.content:
        return "narrative must have some non-whitespace content (txt-2)"
    return None
