"""The tests' helpers, one package (tests/ is on sys.path: pytest puts the root conftest's folder
there): real models and videos for the runtime (runtime), checkpoints and exports (export), Ray
runs (scale), a real full disk (fulldisk), processes that take a real Ctrl-C (procs)."""
