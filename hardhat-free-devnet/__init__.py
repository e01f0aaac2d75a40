"""hardhat-free devnet: a persistent Ethereum JSON-RPC devnet in Python (eth-tester + py-evm)."""
