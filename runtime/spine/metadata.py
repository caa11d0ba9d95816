"""The one metadata block every artifact carries: schema-versioned JSON under METADATA_KEY in the
ONNX metadata_props (and in TorchScript's _extra_files under METADATA_FILE). The runtime needs no
side files. Parsed with json.loads only."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from catdog.runtime.spine.errors import MetadataError
from catdog.runtime.spine.jsonsafe import TooDeep, loads_bounded
from catdog.runtime.spine.spec import PreprocessSpec

# Schema 2 added `temperature` (calibrated scores); schema 1 files load with temperature 1.
SCHEMA_VERSION = 2
METADATA_KEY = "catdog_edge"
METADATA_FILE = "catdog_edge.json"  # the TorchScript _extra_files name
INPUT_FORMATS = ("float", "uint8")  # float: NCHW from preprocess(); uint8: NHWC crops, baked graph
OUTPUT_KINDS = ("logits", "probs")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class ModelMetadata:
    classes: tuple[str, ...]
    spec: PreprocessSpec
    arch: str
    checkpoint_sha256: str | None = None
    accuracy: dict[str, Any] | None = None  # e.g. {"val_acc": 0.99, "n": 400}
    input_format: str = "float"
    output: str = "logits"
    precision: str = "fp32"
    temperature: float = 1.0  # the runtime's scores are softmax(logits / T), T fitted on validation
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if len(self.classes) < 2 or not all(isinstance(c, str) and c for c in self.classes):
            raise MetadataError(f"metadata needs at least 2 non-empty class names, got {list(self.classes)}")
        if len(set(self.classes)) != len(self.classes):
            raise MetadataError(f"metadata class names repeat: {list(self.classes)}")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < 1e3):
            raise MetadataError(f"metadata temperature must be a number in (0, 1000), got {self.temperature!r}")
        for name, value, allowed in (
            ("input_format", self.input_format, INPUT_FORMATS),
            ("output", self.output, OUTPUT_KINDS),
            ("precision", self.precision, PRECISIONS),
        ):
            if value not in allowed:
                raise MetadataError(f"metadata {name} must be one of {allowed}, got {value!r}")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def with_(self, **changes: Any) -> "ModelMetadata":
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "classes": list(self.classes),
            "spec": self.spec.to_dict(),
            "arch": self.arch,
            "checkpoint_sha256": self.checkpoint_sha256,
            "accuracy": self.accuracy,
            "input_format": self.input_format,
            "output": self.output,
            "precision": self.precision,
            "temperature": self.temperature,
            "versions": dict(self.versions),
            "extra": dict(self.extra),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Any, source: str = "model") -> "ModelMetadata":
        if not isinstance(d, dict):
            raise MetadataError(f"{source}: catdog metadata must be a JSON object")
        version = d.get("schema_version")
        if not isinstance(version, int):
            raise MetadataError(f"{source}: catdog metadata has no schema_version; re-export the model")
        if version > SCHEMA_VERSION:
            raise MetadataError(
                f"{source} was exported by a newer catdog-edge (schema {version}, this one reads "
                f"up to {SCHEMA_VERSION}); upgrade catdog-edge"
            )
        try:
            return cls(
                classes=tuple(d["classes"]),
                spec=PreprocessSpec.from_dict(d["spec"]),
                arch=str(d["arch"]),
                checkpoint_sha256=d.get("checkpoint_sha256"),
                accuracy=d.get("accuracy"),
                input_format=d.get("input_format", "float"),
                output=d.get("output", "logits"),
                precision=d.get("precision", "fp32"),
                temperature=float(d.get("temperature", 1.0)),
                versions=dict(d.get("versions") or {}),
                extra=dict(d.get("extra") or {}),
                schema_version=version,
            )
        except KeyError as e:
            raise MetadataError(f"{source}: catdog metadata lacks field {e.args[0]!r}; re-export the model") from None
        except MetadataError as e:
            raise MetadataError(f"{source}: {e}") from None
        except (TypeError, ValueError) as e:
            raise MetadataError(f"{source}: malformed catdog metadata ({e}); re-export the model") from None

    @classmethod
    def from_json(cls, text: str, source: str = "model") -> "ModelMetadata":
        try:
            d = loads_bounded(text)
        except TooDeep as e:
            raise MetadataError(f"{source}: catdog metadata is malformed ({e}); re-export the model") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise MetadataError(f"{source}: catdog metadata is not valid JSON ({e}); re-export the model") from None
        return cls.from_dict(d, source)


def from_metadata_map(props: Mapping[str, str], source: str = "model") -> ModelMetadata | None:
    """ONNX metadata_props (e.g. onnxruntime's custom_metadata_map) -> metadata, or None if absent."""
    text = props.get(METADATA_KEY)
    return None if text is None else ModelMetadata.from_json(text, source)
