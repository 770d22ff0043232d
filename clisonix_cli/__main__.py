"""``python -m clisonix_cli``."""

from clisonix_cli.cli.app import main

main()
