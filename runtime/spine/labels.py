"""Class names for third-party models: one name a line, `idx,name` CSV, or JSON (list or
{index: name}). Parsed with json.loads / plain string splitting only."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from catdog.runtime.spine.errors import InputError
from catdog.runtime.spine.jsonsafe import TooDeep, loads_bounded

_IDX_LINE = re.compile(r"^\s*(\d+)\s*[,;\t:]\s*(.*?)\s*$")


def _from_index_map(pairs: list[tuple[int, str]], path: Path) -> list[str]:
    by_idx = dict(pairs)
    if len(by_idx) != len(pairs) or sorted(by_idx) != list(range(len(by_idx))):
        raise InputError(f"{path}: class indices must run 0..N-1 without gaps or repeats")
    return [by_idx[i] for i in range(len(by_idx))]


def _parse_json(text: str, path: Path) -> list[str]:
    try:
        data = loads_bounded(text)
    except TooDeep as e:
        raise InputError(f"{path}: {e}; use a list of names or an {{index: name}} object") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e}); use a list of names or an {{index: name}} object") from None
    if isinstance(data, list):
        return [str(x) for x in data]
    if isinstance(data, dict):
        try:
            pairs = [(int(k), str(v)) for k, v in data.items()]
        except ValueError:
            raise InputError(f"{path}: JSON object keys must be class indices (0, 1, ...)") from None
        return _from_index_map(pairs, path)
    raise InputError(f"{path}: JSON labels must be a list of names or an {{index: name}} object")


def _parse_text(text: str, path: Path) -> list[str]:
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        return []
    matches = [_IDX_LINE.match(line) for line in lines]
    if matches[0] is None and all(matches[1:]) and len(lines) > 1:
        matches, lines = matches[1:], lines[1:]  # a header line such as "idx,name"
    found = [m for m in matches if m is not None]
    if len(found) == len(matches):
        return _from_index_map([(int(m.group(1)), m.group(2)) for m in found], path)
    names = [line.strip() for line in lines]
    if "" in names:
        raise InputError(f"{path}: line {names.index('') + 1} is empty; one class name per line, no blank lines")
    return names


def load_labels(path: str | os.PathLike) -> tuple[str, ...]:
    """Read class names. Repeated names (ImageNet has two "crane"s) get their index appended so
    that every class keeps its own probability."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: labels file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: labels file is not UTF-8 text") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read labels file ({e.strerror})") from None
    names = _parse_json(text, path) if path.suffix.lower() == ".json" else _parse_text(text, path)
    if len(names) < 2:
        raise InputError(f"{path}: needs at least 2 class names, found {len(names)}")
    if any(not n for n in names):
        raise InputError(f"{path}: class names must not be empty")
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        out.append(name if name not in seen else f"{name} ({i})")
        seen.setdefault(name, i)
    return tuple(out)
