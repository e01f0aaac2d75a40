"""Training a decoder-only Transformer language model from scratch, with a verified dataset."""

from modelreg.training import numerics

numerics.pin()  # before torch runs a kernel: CPU steps must be bit-exact on the auditor's CPU too
