"""`python -m catdog.runtime ...` is the same as `catdog-runtime ...`."""

from catdog.runtime.cli import main

main()
