"""The rest of `catdog-bench run`: accuracy, overhead and the video pipeline (sections), the runtime
against what a user would write by hand and against torch (contenders; the bare_* scripts are its
hand-written baselines), large photos (large), and the run end to end (bench)."""
