"""Runs that judge a recipe or a machine rather than make the model you keep: k-fold
cross-validation (cv) and training throughput, loader against model (bench)."""
