"""`python -m entrypoints ...` runs the `evidence` command."""

from entrypoints.cli import main

main()
