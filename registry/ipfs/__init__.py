"""IPFS: Kubo-identical UnixFS and dag-pb, the embedded blockstore, CARv1, and the Kubo client."""
