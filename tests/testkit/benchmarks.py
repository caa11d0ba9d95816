"""Benchmark-test helpers: figures the benchmark reports must show for doctor's probe model
(catdog.benchmarks.doctor.tiny_classifier), worked out by hand from its layers."""

from __future__ import annotations


def tiny_macs(size: int = 32, width: int = 8, classes: int = 2) -> int:
    """The MACs the flops counter must find in tiny_classifier at batch 1: a 3x3 stride-2 Conv (pad 1)
    from 3 to `width` channels, then a Gemm to `classes`."""
    out = (size + 1) // 2
    return out * out * width * 3 * 3 * 3 + width * classes
