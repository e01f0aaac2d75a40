"""modelreg's core library.

The pipeline, in the order data flows through it:

- `seal`: a safetensors checkpoint (or a dataset directory) becomes a Merkle tree
  (`merkle`, OpenZeppelin StandardMerkleTree layout) and a canonical `manifest`.
- `ipfs`: the checkpoint and its manifest are pinned as UnixFS files (`unixfs`, `car`),
  in the embedded blockstore or a Kubo daemon.
- `chain`: the roots, the parent and the manifest CID are committed through the
  ModelRegistry contract.
- `verify` recomputes a root and compares it with the chain; `audit` rebuilds a
  model's history and lineage from contract events.

Nothing here imports `training` or `cli`.
"""
