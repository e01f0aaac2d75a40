"""Model formats and sealing: the strict safetensors reader, Merkle trees, seals, manifests, diffs."""
