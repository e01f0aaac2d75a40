"""Training a decoder-only Transformer language model from scratch, with a verified dataset."""
