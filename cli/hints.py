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
    # hostile registries (issue 20)
    errors.CapExceeded: "if you trust the source, set ${env} higher and run it again",


    # a Kubo daemon's RPC API (issue 23)
    errors.IpfsRefused: ("start the daemon (`ipfs daemon`), or fix --ipfs-api ($MODELREG_IPFS_API); naming its "
                         "IPFS_PATH directory (--ipfs-api ~/.ipfs) finds it on whatever port it listens"),
    errors.IpfsApiFileMissing: "start the daemon with `IPFS_PATH={repo} ipfs daemon`, or fix --ipfs-api",
    errors.IpfsDropped: ("check that the daemon at {api} still runs (its log says why it stopped), restart it "
                         "and run the command again: what was stored is kept, nothing is added twice"),
    errors.IpfsTimeout: "the daemon may be busy: run it again, or allow more with --timeout (now {timeout} s)",
    errors.IpfsAnswerInvalid: ("point --ipfs-api at Kubo's RPC API (port 5001 by default; the gateway on 8080 "
                               "is not it)"),
    errors.IpfsCallRejected: "the daemon's message says why; fix that and run the command again",
    # issue24
    errors.ExtraNotInstalled: "pip install 'modelreg[{extra}]' (into the environment that runs modelreg)",


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


HINTS[errors.IndexUnavailable] = ("free disk space or fix the permissions of {path}, wait for the other modelreg "
                                  "process writing it, or delete it: it is a cache, rebuilt from the chain")


# --- issue22: ModelRegistry v3 ----------------------------------------------------------------
HINTS[errors.AccumulatorMismatch] = "run the command again: it reads the model's history afresh"


# issue 19: outside data, shared stores, full disks
HINTS.update({
    errors.DiskFull: "free space there (or use another --home), then run the same command again",
    errors.StoreInvalid: "`modelreg ipfs check` lists what is wrong with the store",
    errors.JsonTooDeep: "the data is hostile or broken: ask its publisher, or point at another source",
    errors.JsonTooLarge: "the data is hostile or broken: ask its publisher, or point at another source",
})


# --- derivations (modelreg derive) -------------------------------------------
HINTS.update({
    errors.TransformUnknown: "`modelreg derive --help` lists the transforms",
    errors.TransformParamsInvalid: "`modelreg derive --help` lists each transform's parameters",
    errors.SourceRevoked: "`modelreg audit history {model}` lists its versions; derive from a live one",
    errors.SourceUnverified: "drop --local to fetch the source by its CID, or pass a copy of the committed files",
})
