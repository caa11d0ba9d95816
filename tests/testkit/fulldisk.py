"""A real full disk for tests (a filled tmpfs in a user namespace, no mocks). It lives in
catdog.benchmarks.fulldisk, since scripts/bad_inputs.py needs it too and scripts never import the
tests; the tests import it from here like every other helper."""

from catdog.benchmarks.fulldisk import available, run_on_full_disk  # noqa: F401 - re-exported for the tests
