"""Export's side of the artifact table: how each artifact is built and which gates it must pass
(formats), and which artifacts an export makes in what order (build)."""
