"""`python -m modelreg.cli` runs the `modelreg` command (for environments without the console script)."""

from modelreg.cli.main import main

main()
