"""The one result record of every input the runtime classifies: a `Prediction`, or a `Failure` that
keeps its kind. The Classifier makes them; every output (the table, JSON lines, CSV, the API, the
live record, Parquet) takes them and turns them into text through spine/serialize.py, never from a
dict built on the spot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence, Union

from catdog.runtime.spine.errors import (
    DataError,
    GateError,
    InputError,
    ModelError,
    OutputError,
    ProviderError,
)

UNSURE = "unsure"  # the label of a prediction whose top probability is below `unsure_below`

# What failed. input: the image, file, upload or URI could not be read (InputError, DataError, or
# any library error on one file); model: the model gave NaN/inf scores or cannot run (ModelError,
# ProviderError, GateError); output: a file the run writes (OutputError); stream: a live source
# that ended badly (a camera that dropped and did not come back, a video cut short).
FailureKind = Literal["input", "model", "output", "stream"]
KINDS: tuple[FailureKind, ...] = ("input", "model", "output", "stream")
_BY_CLASS: tuple[tuple[type[Exception], FailureKind], ...] = (
    (InputError, "input"), (DataError, "input"), (ModelError, "model"), (ProviderError, "model"),
    (GateError, "model"), (OutputError, "output"))


@dataclass(frozen=True)
class Prediction:
    label: str  # a class name, or UNSURE
    index: int  # the top class's index (also when the label is UNSURE)
    score: float  # the top class's probability (calibrated when the model carries a temperature)
    probs: dict[str, float]

    @property
    def unsure(self) -> bool:
        return self.label == UNSURE

    def top(self, k: int) -> list[tuple[str, float]]:
        return sorted(self.probs.items(), key=lambda kv: kv[1], reverse=True)[:k]


@dataclass(frozen=True)
class Failure:
    """An input that got no label. `message` is the one line a user sees (it names the input, as
    every CatdogError's does); `source` is the input it is about ('' where it has none yet, e.g. a
    row of NaN scores before the Classifier pairs it with its file)."""

    kind: FailureKind
    message: str
    source: str = ""

    @classmethod
    def of(cls, exc: BaseException, source: str = "", default: FailureKind = "input") -> "Failure":
        """The Failure of an exception: its kind from its class (errors.py), its message str(exc)."""
        return cls(kind_of(exc, default), str(exc), source)


Record = Union[Prediction, Failure]  # what every output takes, one per input


def kind_of(exc: BaseException, default: FailureKind = "input") -> FailureKind:
    return next((kind for cls, kind in _BY_CLASS if isinstance(exc, cls)), default)


def joined(source: str, parts: Sequence[tuple[FailureKind, str | None]]) -> Failure | None:
    """What went wrong with one source, several things perhaps (a live run: the model's NaN, the
    stream that dropped, the saved video that could not be written), as one Failure: the messages
    joined by '; ', the kind of the first. None when nothing did."""
    said = [(kind, msg) for kind, msg in parts if msg]
    return Failure(said[0][0], "; ".join(msg for _, msg in said), source) if said else None
