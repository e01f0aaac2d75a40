"""The ModelRegistry contract: its source, the committed compiled artifact and the reproducible build."""
