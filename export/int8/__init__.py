"""INT8: static QDQ quantization (quantize), graph surgery on QDQ models (qdq_surgery), per-layer
sensitivity (sensitivity) and the calibration method and fp32 layers picked among candidates
(int8_choice)."""
