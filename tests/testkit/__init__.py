"""The tests' helpers, one package (tests/ is on sys.path: pytest puts the root conftest's folder
there): real models and videos for the runtime (runtime; built by catdog.benchmarks.synthetic, which
scripts use too), checkpoints and exports (export), figures for doctor's probe (benchmarks), Ray
runs (scale), a real full disk (fulldisk; catdog.benchmarks.fulldisk's), processes that take a real
Ctrl-C (procs)."""
