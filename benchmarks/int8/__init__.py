"""`catdog-bench int8`: CPU INT8 models against their fp32 on this CPU (bench) and its report
(report)."""
