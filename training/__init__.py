"""Training a decoder-only Transformer language model from scratch, with a verified dataset."""

from modelreg._extras import require

require("train", "modelreg.training")  # one ExtraNotInstalled, not a bare ModuleNotFoundError

from modelreg.training import numerics  # noqa: E402

numerics.pin()  # before torch runs a kernel: CPU steps must be bit-exact on the auditor's CPU too
