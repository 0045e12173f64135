"""What a block with bad values still has to say: the rules that span its fields.

Pydantic runs a model's own validators (``exactly one of workflow_id or
workflow_type``, a required alternative, a pair of thresholds) only once every field
has parsed, so a bad value used to hide them. :func:`salvage` drops the keys that
failed, validates again and returns what is left: the value as salvaged and the
errors that only then appear (attack report 2, item 8).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

MAX_ROUNDS = 8  # each round drops every key that failed; nesting is shallow

Loc = tuple[int | str, ...]


def salvage(
    validate: Callable[[Any], object], value: Any, exc: ValidationError, skip: int = 0
) -> tuple[Any, list[ErrorDetails]]:
    """``(value without its failing keys or None, errors the first pass hid)``.

    ``validate`` raises :class:`ValidationError` for ``value``'s shape; ``exc`` is what
    it raised for ``value``; ``skip`` is how many leading parts of each error's ``loc``
    are not keys of ``value`` (a wrapping section name, a list position). The hidden
    errors are those at no location reported before nor below one: cross-field rules,
    not "is required" for a key that was dropped for its bad value, nor a rule whose
    message names a dropped key (``equals needs json_path`` when ``json_path`` was bad).
    """
    current = copy.deepcopy(value)
    reported = {tuple(e["loc"][skip:]) for e in exc.errors()}
    errors = exc.errors()
    dropped: set[Loc] = set()  # where keys were left out: "is required" there is no news
    for _round in range(MAX_ROUNDS):
        cuts = [_drop(current, tuple(e["loc"][skip:])) for e in errors]
        if not any(cut is not None for cut in cuts):
            break
        dropped.update(cut for cut in cuts if cut is not None)
        try:
            validate(current)
        except ValidationError as again:
            errors = again.errors()
        else:
            return current, []
    # a rule naming a dropped key judges the bad value itself: it waits for the fix
    names = {str(cut[-1]) for cut in dropped}
    naming = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b") if names else None
    hidden = [
        e
        for e in errors
        if not _under_any(tuple(e["loc"][skip:]), reported | dropped)
        and not (naming and naming.search(e["msg"]))
    ]
    return None, hidden


def _under_any(loc: Loc, reported: set[Loc]) -> bool:
    return any(loc[:cut] in reported for cut in range(len(loc) + 1))


def _drop(value: Any, loc: Loc) -> Loc | None:
    """Delete the deepest mapping key along ``loc`` that lies in no list; the location
    of that key, or None if there was none.

    Past a list, the whole list goes: dropping one entry would shift the positions
    that later problems quote.
    """
    parent: dict[Any, Any] | None = None
    key: Any = None
    node = value
    depth = 0
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            break  # a list, a union member's name, or a key that is missing
        parent, key, node = node, part, node[part]
        depth += 1
    if parent is None:
        return None
    del parent[key]
    return loc[:depth]
