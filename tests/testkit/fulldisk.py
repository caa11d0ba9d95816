"""A real full disk for tests (a filled tmpfs in a user namespace, no mocks). It lives in
scripts/fulldisk.py, since scripts/bad_inputs.py needs it too and scripts never import the tests
(tests/conftest.py puts scripts/ on sys.path); the tests import it from here like every other helper."""

from fulldisk import available, run_on_full_disk  # noqa: F401 - re-exported for the tests
