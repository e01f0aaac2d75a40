"""The committed compiled artifact, loaded as package data: nothing needs a compiler at run time."""

import json
from functools import cache
from importlib.resources import files


@cache
def load_artifact(name: str = "ModelRegistry") -> dict:
    """The artifact `contracts/<name>.json`: abi, bytecode, deployedBytecode, compiler, settings, sources."""
    return json.loads(files("modelreg.contracts").joinpath(f"{name}.json").read_text(encoding="utf-8"))
