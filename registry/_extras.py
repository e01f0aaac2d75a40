"""The optional parts of the install: which extra brings which module, and the error when one is missing.

The core (`pip install modelreg`) seals, commits, verifies and audits without torch; `modelreg[train]`
adds torch for training and replay (and dp-accounting for DP-SGD), `modelreg[hf]` adds transformers for
the Trainer callback, `modelreg[derive]` adds onnx and onnxruntime for the ONNX export.
"""

import importlib.util

from modelreg.errors import ExtraNotInstalled

# extra -> the modules it installs that the code imports
EXTRAS = {"train": ("torch", "tokenizers", "dp_accounting"), "hf": ("torch", "transformers", "accelerate"),
          "derive": ("torch", "onnx", "onnxruntime")}


def require(extra: str, needed_for: str) -> None:
    """ExtraNotInstalled, naming the extra and the pip command, unless `extra`'s modules can be imported.

    Found by `importlib.util.find_spec`, so nothing is imported (torch takes seconds to import).
    """
    missing = [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]
    if missing:
        raise ExtraNotInstalled(f"{needed_for} needs {', '.join(missing)}, which the modelreg[{extra}] extra "
                                "installs", extra=extra)
