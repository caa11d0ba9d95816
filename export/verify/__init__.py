"""Proving the artifacts: the calibration and parity photos (images), and every artifact against
eager PyTorch on them, with the gates (parity)."""
