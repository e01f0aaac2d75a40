"""`python -m cli` runs the `modelreg` command (for environments without the console script)."""

from cli.main import main

main()
