"""Which integer path ONNX Runtime's CPU kernels take on this machine, read from the CPU's flags,
and what that means for an INT8 model. The figures of an INT8 model measured on the CPU are the
figures of that path, not of the model: export and benchmark reports name it beside them.

Why it matters (ORT's quantization guide, "When and why do I need to try U8U8?"): on x86-64 with
AVX2 or AVX-512 but without VNNI, the u8*s8 kernels use VPMADDUBSW, which adds each pair of
products into an int16 and saturates there. ORT runs s8 activations through the same kernels
(it shifts them to u8), so any int8 weight of magnitude above 64 can saturate. VNNI (VPDPBUSD)
and ARM's dot-product and NEON kernels accumulate in int32: exact. TensorRT is exact too."""

from __future__ import annotations

import functools
import platform
import re
from pathlib import Path

# int8_path() names, in the order they are checked.
AVX512_VNNI, AVX_VNNI, AVX512, AVX2 = "AVX-512 VNNI", "AVX-VNNI", "AVX-512", "AVX2"
ARM_DOT, ARM_NEON = "ARM dot-product", "ARM NEON"
# Paths whose u8*s8 kernels add product pairs in int16 (VPMADDUBSW): full-range weights saturate.
SATURATING = frozenset({AVX512, AVX2})
# The largest |int8 weight| for which two u8*s8 products cannot leave int16: 2 * 255 * 64 = 32640.
SAFE_WEIGHT = 64
# The reference that does not depend on any CPU's integer instructions: ORT with graph optimization
# off runs each QuantizeLinear/DequantizeLinear as its own op around fp32 kernels (fake quantization).
SIMULATED = "simulated QDQ (fp32 kernels)"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 `flags`, ARM `Features`) from /proc/cpuinfo; empty elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    flags: set[str] = set()
    for m in re.finditer(r"^(?:flags|Features)\s*:\s*(.+)$", text, re.M):
        flags.update(m.group(1).split())
    return frozenset(flags)


def int8_path(flags: frozenset[str] | set[str] | None = None, machine: str | None = None) -> str:
    """The integer path of ORT's CPU INT8 kernels here: one of the names above, or the machine
    name when the flags say nothing (an Apple arm64 has dot-product on every model)."""
    flags = cpu_flags() if flags is None else flags
    machine = (machine or platform.machine()).lower()
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return AVX512_VNNI
    if "avx_vnni" in flags:
        return AVX_VNNI
    if "avx512bw" in flags or "avx512f" in flags:
        return AVX512
    if "avx2" in flags:
        return AVX2
    if "asimddp" in flags or (machine == "arm64" and not flags):
        return ARM_DOT
    if "asimd" in flags or "neon" in flags or machine in ("aarch64", "arm64"):
        return ARM_NEON
    return machine or "unknown"


# --int8-target NAME: the CPU class a CPU INT8 model is built for (export/int8/quantize.py's INT8_FORMATS
# says which format each gets); "auto" is the CPU running the export.
TARGETS = ("avx2", "vnni", "arm")
VNNI_PATHS = frozenset({AVX512_VNNI, AVX_VNNI})
ARM_PATHS = frozenset({ARM_DOT, ARM_NEON})


def target_of(path: str | None = None) -> str:
    """The --int8-target that fits an integer path (this CPU's by default); an unknown CPU gets
    avx2, the format every CPU computes exactly."""
    path = path or int8_path()
    return "vnni" if path in VNNI_PATHS else "arm" if path in ARM_PATHS else "avx2"


def saturates(path: str, max_weight: int) -> bool:
    """Whether an INT8 model whose largest |quantized weight| is `max_weight` can saturate on `path`."""
    return path in SATURATING and max_weight > SAFE_WEIGHT


def kernels_label(path: str | None = None) -> str:
    """How a CPU INT8 figure was measured, for reports: 'ORT CPU integer kernels (AVX2)'."""
    return f"ORT CPU integer kernels ({path or int8_path()})"


_warned: set[str] = set()


def saturation_warning(int8: dict | None, model: str, path: str | None = None) -> str | None:
    """The one line the runtime prints (once per model file) when an INT8 model's weights can
    saturate this CPU's kernels; `int8`: the metadata's extra["int8"] record (export writes it)."""
    if not int8 or model in _warned:
        return None
    top = int(int8.get("max_int8_weight") or 0)
    if top <= SAFE_WEIGHT:  # before reading /proc/cpuinfo: the one-photo path's cold start
        return None
    here = path or int8_path()
    if not saturates(here, top):
        return None
    _warned.add(model)
    if int8.get("for") == "tensorrt":
        built = "TensorRT"
    else:
        built = f"--int8-target {int8['target_isa']}" if int8.get("target_isa") else str(int8.get("for", "another CPU"))
    return (f"warning: {model} is INT8 for {built} with weights up to |{top}|; ORT's {here} kernels on this CPU add "
            "int8 products in int16 and can saturate, changing answers; here run the fp32 model or one exported "
            "with catdog-export --int8 --int8-target avx2 (7-bit weights, exact on every CPU)")
