"""Test helper: run one of the UnixFS builders (a generator of blocks that returns the root link)."""


def run_builder(gen) -> tuple[list, object]:
    """Every block the builder yields, and what it returns (the root's link)."""
    blocks = []
    try:
        while True:
            blocks.append(next(gen))
    except StopIteration as done:
        return blocks, done.value
