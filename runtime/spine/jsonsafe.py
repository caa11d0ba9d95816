"""JSON from files a user hands over (a model's metadata block, a --labels file) parsed with a bound
on nesting: json.loads of `[[[[...` 100 000 deep raises RecursionError, and a block that parses just
under Python's limit can still overflow whatever walks it later. MAX_DEPTH is far above any real
metadata (4 levels) or labels file (2)."""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


class TooDeep(ValueError):
    """JSON nested deeper than MAX_DEPTH; str() says how deep, for the caller's one line."""


def loads_bounded(text: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, refusing nesting deeper than `max_depth` (TooDeep); json.JSONDecodeError as json.loads."""
    try:
        data = json.loads(text)
    except RecursionError:
        raise TooDeep(f"JSON nested too deeply (over {max_depth} levels)") from None
    stack = [(data, 1)]
    while stack:  # iterative: the check must not recurse either
        value, depth = stack.pop()
        if depth > max_depth:
            raise TooDeep(f"JSON nested too deeply (over {max_depth} levels)")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
    return data
