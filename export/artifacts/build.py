"""The build: which artifacts an export makes and in what order. Each row of the table says which
artifact's graph it derives from (`needs`); an artifact is built after what it needs, which is
built too when it was not asked for, and it is handed that graph by name. Among artifacts that do
not depend on each other the table's order holds, so the report lists them as it always has."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Mapping

import onnx

from catdog.export.artifacts.formats import FORMATS, ArtifactFormat, BuildContext, get_format
from catdog.runtime.spine.errors import ModelError

Table = Mapping[str, ArtifactFormat]


def with_needs(asked: Iterable[str], table: Table = FORMATS) -> set[str]:
    """`asked` and, transitively, every artifact they derive from. Unknown names list the known ones;
    a cycle in the table is an error, not a hang."""
    out: set[str] = set()

    def add(name: str, chain: tuple[str, ...]) -> None:
        if name in chain:
            raise ModelError(f"artifact {name!r} derives from itself: {' -> '.join(chain + (name,))}")
        fmt = get_format(name, table)
        out.add(name)
        if fmt.needs is not None:
            add(fmt.needs, chain + (name,))

    for name in asked:
        add(name, ())
    return out


def build_order(asked: Iterable[str], table: Table = FORMATS) -> list[str]:
    """The artifacts to build for `asked` (with what they need), each after the artifact it needs;
    otherwise in the table's order."""
    wanted = with_needs(asked, table)
    todo = [n for n in table if n in wanted]
    order: list[str] = []
    while todo:
        # The table's first artifact whose prerequisite is already in the order; with_needs has
        # proved there is no cycle, so there always is one.
        name = next(n for n in todo if table[n].needs is None or table[n].needs in order)
        order.append(name)
        todo.remove(name)
    return order


def build_all(names: list[str], ctx: BuildContext, path_of: Callable[[str], Path],
              step: Callable[[str], None] = lambda msg: None, table: Table = FORMATS) -> None:
    """Build `names` (build_order's list) at path_of(file name), each builder handed the graph of the
    artifact it needs. Checked before anything is built: a list out of order is a clear error."""
    for i, name in enumerate(names):
        need = table[name].needs
        if need is not None and need not in names[:i]:
            raise ModelError(f"{name} derives from {need}, which is not built before it; build the list "
                             "build_order gives")
    graphs: dict[str, onnx.ModelProto] = {}
    for name in names:
        fmt = table[name]
        step(f"building {fmt.filename}")
        source = None if fmt.needs is None else graphs.get(fmt.needs)
        if fmt.needs is not None and source is None:
            raise ModelError(f"{name} derives from {fmt.needs}, whose builder gave no ONNX graph")
        graph = fmt.builder(ctx, path_of(fmt.filename), fmt.metadata(ctx.meta), source)
        if graph is not None:
            graphs[name] = graph
