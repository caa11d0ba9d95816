"""The tests' helpers, one package (tests/ is on sys.path: pytest puts the root conftest's folder
there): real models and videos for the runtime (runtime; built by scripts/synthetic.py, which
scripts use too), checkpoints and exports (export), figures for doctor's probe (benchmarks), Ray
runs (scale), a real full disk (fulldisk; scripts/fulldisk.py's), processes that take a real
Ctrl-C (procs)."""
