"""What to type next, for each kind of library error: CLI advice lives here, not in the library."""

from modelreg import errors

# Looked up along the error's class hierarchy, most specific first.
HINTS: dict[type, str] = {
    errors.ChainUnavailable: "start the node at {endpoint}, or fix --rpc-url ($MODELREG_RPC_URL)",
    errors.ChainIdMismatch: "point --rpc-url at a node of the configured chain, or drop --chain-id",
    errors.DeploymentNotRecorded: ("to read an existing registry pass --registry ADDRESS (or set "
                                   "MODELREG_REGISTRY), to start a new one run `modelreg deploy` with the "
                                   "same --rpc-url"),
    errors.ContractIncompatible: ("run `modelreg deploy --force` for a current registry on this chain (the old "
                                  "address stays in deployments.json), or pass --registry with the address of one"),
    errors.DeploymentExists: ("use it as it is, or pass --force to deploy a new one (the old address stays "
                              "in deployments.json)"),
    errors.IpfsUnavailable: "start `ipfs daemon` for {api}, or fix --ipfs-api ($MODELREG_IPFS_API)",
    errors.ModelNotFound: "`modelreg audit models` lists the registered models",
    errors.VersionNotFound: "`modelreg audit history {model}` lists its versions",
    errors.BlockNotFound: "`modelreg ipfs ls` lists the pins",
    errors.InsufficientFunds: "fund the signer's account, or choose another signer",
    errors.SymlinkRefused: "pass --follow-symlinks to follow links",
    # -- testnet-grade chain operations (issue 28)
    errors.RpcDeadlineExceeded: ("raise --timeout ($MODELREG_TIMEOUT), or add a fallback endpoint with a second "
                                 "--rpc-url"),
    errors.NodeBehind: "wait for {endpoint} to catch up, or give another --rpc-url that is in sync",
    errors.FeeCapReached: "raise --max-fee-gwei, or run again when fees are lower (the journal keeps the work)",
    errors.NonceLockHeld: "wait for the other modelreg process that signs with this key, then run again",
}


def hint_for(error: errors.ModelregError) -> str | None:
    """The hint for `error`, its `{names}` filled from the error's context; None if there is none."""
    for cls in type(error).__mro__:
        if cls in HINTS:
            try:
                return HINTS[cls].format(**getattr(error, "context", {}))
            except KeyError:  # raised for another reason than the hint is about: its message says it all
                return None
    return None
