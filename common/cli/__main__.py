"""`python -m common.cli` runs the `harrier` command (used by tests and images)."""

from common.cli import main

main()
