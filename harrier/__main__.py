"""`python -m harrier` runs the `harrier` command (used by tests and images)."""

from harrier.cli import main

main()
