"""modelreg's command line: thin click commands, one library call each."""
