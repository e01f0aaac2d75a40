"""The chain: the ModelRegistry client, signers, recorded deployments and revert decoding."""
