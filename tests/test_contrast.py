"""Every status text reads at WCAG AA (4.5:1) in the light and the dark theme.

Read from the real stylesheet (``server/templates/static/lightbulb.css``): its
custom properties per theme (``:root``, then ``@media (prefers-color-scheme: dark)``),
and a small cascade (specificity, then order) over each rule's selector taken as an
element path. Checked: every element a rule gives a text colour, and every status
chip (``.badge``, ``.count``) a rule gives a background, against its own background,
the nearest one up its path, or else each page surface; and the dependency map's node
text (colour from the stylesheet) on its node (``server.web.charts.STATUS_COLOURS``).
The shields.io JSON badges name colours shields draws: not ours to check.
"""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import pytest

from server.web import charts
from server.web.queries import STATUS_NAMES

CSS = Path(__file__).parents[1] / "templates" / "static" / "lightbulb.css"
AA = 4.5
Decls = dict[str, str]
Rule = tuple[str, tuple[int, int, int], int, Decls]  # selector, specificity, order, decls


def blocks(text: str) -> list[tuple[str, str]]:
    """Top-level ``(prelude, body)`` pairs of ``text`` (comments removed)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    out, depth, start, prelude = [], 0, 0, ""
    for i, ch in enumerate(text):
        if ch == "{":
            if depth == 0:
                prelude, start = text[start:i].strip(), i + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                out.append((prelude, text[start:i]))
                start = i + 1
    return out


def declarations(body: str) -> Decls:
    found = {}
    for part in body.split(";"):
        if ":" in part:
            name, value = part.split(":", 1)
            found[name.strip()] = value.strip()
    return found


def specificity(selector: str) -> tuple[int, int, int]:
    ids = selector.count("#")
    classes = len(re.findall(r"[.:\[]", selector))
    tags = len(re.findall(r"(?:^|[\s>+~])([a-z][a-z0-9]*)", selector))
    return ids, classes, tags


def theme_rules(dark: bool) -> list[Rule]:
    rules: list[Rule] = []
    for prelude, body in blocks(CSS.read_text()):
        if prelude.startswith("@media"):
            inner = blocks(body)
            if "prefers-color-scheme: dark" not in prelude:
                colours = [d for _, b in inner for d in declarations(b)
                           if d in ("color", "background", "background-color", "fill")]  # fmt: skip
                assert not colours, f"{prelude} sets colours this test does not read"
                continue
            if not dark:
                continue
            pairs = inner
        else:
            pairs = [(prelude, body)]
        for sel_list, decl_body in pairs:
            decls = declarations(decl_body)
            for raw in sel_list.split(","):
                selector = raw.strip()
                rules.append((selector, specificity(selector), len(rules), decls))
    return rules


def variables(rules: list[Rule]) -> Decls:
    found: Decls = {}
    for selector, _, _, decls in rules:
        if selector == ":root":
            found.update({k: v for k, v in decls.items() if k.startswith("--")})
    return found


def resolve(value: str, names: Decls) -> str:
    while "var(" in value:
        value = re.sub(r"var\((--[\w-]+)\)", lambda m: names[m.group(1)], value)
    return value


Element = tuple[str, frozenset[str]]  # tag ('' for any), classes


def compound(text: str) -> Element:
    text = re.sub(r":[\w-]+(\([^)]*\))?", "", text)  # pseudo-classes select no colour here
    tag = re.match(r"[a-z][a-z0-9]*", text)
    return (tag.group(0) if tag else "", frozenset(re.findall(r"\.([\w-]+)", text)))


def path_of(selector: str) -> list[Element]:
    return [compound(part) for part in selector.split() if part not in (">", "+", "~")]


def matches(selector: str, path: list[Element]) -> bool:
    """Whether ``selector`` (descendant combinators only) selects the last of ``path``."""
    parts = path_of(selector)
    if not parts or any(p == ("", frozenset()) for p in parts) or "#" in selector:
        return False

    def fits(part: Element, el: Element) -> bool:
        return (not part[0] or part[0] == el[0]) and part[1] <= el[1]

    if not fits(parts[-1], path[-1]):
        return False
    ancestors = list(path[:-1])
    for part in reversed(parts[:-1]):
        while ancestors and not fits(part, ancestors[-1]):
            ancestors.pop()
        if not ancestors:
            return False
        ancestors.pop()
    return True


def computed(rules: list[Rule], path: list[Element], prop: str) -> str | None:
    """``prop`` of the last element of ``path`` as the cascade gives it (not inherited)."""
    found = sorted((r for r in rules if prop in r[3] and matches(r[0], path)),
                   key=lambda r: (r[1], r[2]))  # fmt: skip
    return found[-1][3][prop] if found else None


def text_colour(rules: list[Rule], path: list[Element], prop: str = "color") -> str:
    for depth in range(len(path), 0, -1):  # colour inherits
        value = computed(rules, path[:depth], prop)
        if value is not None:
            return value
    value = computed(rules, [("body", frozenset())], "color")
    assert value is not None
    return value


def backgrounds(rules: list[Rule], path: list[Element], surfaces: list[str]) -> list[str]:
    """The background the text sits on: its own, the nearest up its path, or (unknown
    container) each surface of the page."""
    for depth in range(len(path), 0, -1):
        for prop in ("background-color", "background"):
            value = computed(rules, path[:depth], prop)
            if value is not None and value not in ("none", "transparent"):
                return [value.split()[0]]
    return surfaces


def rgb(colour: str) -> tuple[float, float, float]:
    hexa = colour.lstrip("#")
    assert re.fullmatch(r"[0-9a-fA-F]{3}|[0-9a-fA-F]{6}", hexa), f"not a colour: {colour}"
    if len(hexa) == 3:
        hexa = "".join(c * 2 for c in hexa)
    r, g, b = (int(hexa[i : i + 2], 16) / 255 for i in (0, 2, 4))
    return r, g, b


def luminance(colour: str) -> float:
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb(colour)]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def chips_and_texts(rules: list[Rule]) -> list[str]:
    """Selectors of every element given a text colour, and of every status chip given a
    background."""
    out = []
    for selector, _, _, decls in rules:
        if selector in (":root", "*") or "#" in selector:
            continue
        last = path_of(selector)[-1] if path_of(selector) else ("", frozenset())
        chip = bool(last[1] & {"badge", "count"}) and ("background" in decls)
        if "color" in decls or chip:
            out.append(selector)
    return sorted(set(out))


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_every_status_text_and_chip_in_the_stylesheet_reads_at_aa(dark: bool) -> None:
    rules = theme_rules(dark)
    names = variables(rules)
    surfaces = [resolve(v, names) for v in (names["--bg"], names["--surface"])]
    checked, failing = 0, []
    for selector in chips_and_texts(rules):
        path = path_of(selector)
        fg = resolve(text_colour(rules, path), names)
        for behind in backgrounds(rules, path, surfaces):
            bg = resolve(behind, names)
            checked += 1
            if contrast(fg, bg) < AA:
                failing.append(f"{selector}: {fg} on {bg} {contrast(fg, bg):.2f}:1")
    assert checked > 30  # the badges, counts and status texts were all found
    assert not failing, "\n".join(failing)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_the_dependency_maps_node_text_reads_at_aa_on_every_status(dark: bool) -> None:
    rules = theme_rules(dark)
    names = variables(rules)
    failing = []
    for code, fill in charts.STATUS_COLOURS.items():
        shade = "none" if code is None else str(code)
        for text in (frozenset(), frozenset({"state"})):
            path = [("svg", frozenset({"graph"})), ("a", frozenset({"node", f"s{shade}"})),
                    ("text", text)]  # fmt: skip
            fg = resolve(text_colour(rules, path, "fill"), names)
            if contrast(fg, fill) < AA:
                failing.append(f"node s{shade}: {fg} on {fill} {contrast(fg, fill):.2f}:1")
    assert not failing, "\n".join(failing)


@pytest.mark.parametrize("dark", [False, True], ids=["light", "dark"])
def test_statuses_stay_told_apart_and_the_maps_colours_are_the_pages(dark: bool) -> None:
    names = variables(theme_rules(dark))
    chips = {n.lower(): resolve(names[f"--{n.lower()}"], names) for n in STATUS_NAMES.values()}
    chips["none"] = resolve(names["--none"], names)
    for (a, ca), (b, cb) in combinations(chips.items(), 2):
        assert ca.lower() != cb.lower(), f"{a} and {b} share {ca}"
    for code, name in STATUS_NAMES.items():
        assert charts.STATUS_COLOURS[code].lower() == chips[name.lower()].lower(), name


def test_no_rule_fades_text_below_what_is_measured() -> None:
    """``opacity`` blends text into what lies behind it, below the contrast checked above."""
    faded = [r[0] for dark in (False, True) for r in theme_rules(dark)
             if "opacity" in r[3] and float(r[3]["opacity"]) < 1]  # fmt: skip
    assert not faded
