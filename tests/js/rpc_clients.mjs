// What ethers v6 and viem ask of a node: the same steps, through each library's own API, against one RPC URL.
// in:  {"url", "key" (0x private key, funded), "abi", "bytecode"}   (the ModelRegistry artifact)
// out: {"ethers": {step: {"ok": true, "value"} | {"ok": false, "error"}}, "viem": {...}}
// Each step is independent: one that fails is reported and the rest still run.
import { ethers } from "ethers";
import { createPublicClient, createWalletClient, encodeFunctionData, http, keccak256, toHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const { url, key, abi, bytecode } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

// Returns sload(0): PUSH0 SLOAD PUSH0 MSTORE PUSH1 32 PUSH0 RETURN. Called only through a state override.
const READ_SLOT_0 = "0x5f545f5260205ff3";
const SOMEWHERE = "0x" + "5e".repeat(20);
const SLOT_0 = "0x" + "00".repeat(32);
const FORTY_TWO = "0x" + (42).toString(16).padStart(64, "0");

async function run(steps) {
  const out = {};
  for (const [name, fn] of steps) {
    try {
      out[name] = { ok: true, value: await fn() };
    } catch (e) {
      out[name] = { ok: false, error: String(e.shortMessage || e.message || e).split("\n")[0] };
    }
  }
  return out;
}

function until(check, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const poll = async () => {
      try {
        const value = await check();
        if (value !== undefined) return resolve(value);
      } catch (e) {
        return reject(e);
      }
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(poll, 200);
    };
    poll();
  });
}

async function withEthers() {
  const provider = new ethers.JsonRpcProvider(url, undefined, { pollingInterval: 200 });
  const wallet = new ethers.Wallet(key, provider);
  let registry, receipt, heard;
  return run([
    ["chain id", async () => Number((await provider.getNetwork()).chainId)],
    ["deploy", async () => {
      registry = await new ethers.ContractFactory(abi, bytecode, wallet).deploy();
      await registry.waitForDeployment();
      return (await registry.getAddress()) !== undefined;
    }],
    // contract.on installs eth_newFilter and polls eth_getFilterChanges; off uninstalls it.
    ["event subscription", async () => {
      heard = new Promise((resolve) => registry.once("ModelRegistered", (id, nameHash, owner, name) => resolve(name)));
      await new Promise((r) => setTimeout(r, 500)); // let the subscription install its filter
      return true;
    }],
    ["transaction", async () => {
      receipt = await (await registry.registerModel("ethers-model", "")).wait();
      return receipt.status;
    }],
    ["event heard", async () => heard],
    ["eip-1559 fees", async () => (await provider.getTransaction(receipt.hash)).type],
    ["block with transactions", async () => (await provider.getBlock(receipt.blockNumber, true)).prefetchedTransactions.length],
    ["block receipts", async () => (await provider.send("eth_getBlockReceipts", [toHex(receipt.blockNumber)])).length],
    ["transaction by position", async () =>
      (await provider.send("eth_getTransactionByBlockNumberAndIndex", [toHex(receipt.blockNumber), toHex(receipt.index)])).hash === receipt.hash],
    ["read", async () => Number(await registry.modelCount())],
    ["state override", async () =>
      provider.send("eth_call", [{ to: SOMEWHERE }, "latest", { [SOMEWHERE]: { code: READ_SLOT_0, state: { [SLOT_0]: FORTY_TWO } } }])],
    ["access list", async () => (await provider.send("eth_createAccessList", [{ from: wallet.address, to: await registry.getAddress(), data: registry.interface.encodeFunctionData("registerModel", ["x", ""]) }, "latest"])).accessList.length > 0],
    ["syncing", async () => provider.send("eth_syncing", [])],
    ["listening", async () => provider.send("net_listening", [])],
    ["sha3", async () => provider.send("web3_sha3", ["0x68656c6c6f"])],
    ["coinbase", async () => ethers.isAddress(await provider.send("eth_coinbase", []))],
  ]).finally(() => provider.destroy());
}

async function withViem() {
  const account = privateKeyToAccount(key);
  const transport = http(url);
  const pub = createPublicClient({ transport, pollingInterval: 200 });
  const chainId = await pub.getChainId();
  const chain = { id: chainId, name: "under test", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [url] } } };
  const wallet = createWalletClient({ account, chain, transport });
  let address, receipt, eventFilter, blockFilter;
  return run([
    ["chain id", async () => chainId],
    ["deploy", async () => {
      const hash = await wallet.deployContract({ abi, bytecode });
      address = (await pub.waitForTransactionReceipt({ hash })).contractAddress;
      return address !== undefined;
    }],
    ["event filter", async () => {
      eventFilter = await pub.createContractEventFilter({ address, abi, eventName: "ModelRegistered" });
      blockFilter = await pub.createBlockFilter();
      return true;
    }],
    ["transaction", async () => {
      const hash = await wallet.writeContract({ address, abi, functionName: "registerModel", args: ["viem-model", ""] });
      receipt = await pub.waitForTransactionReceipt({ hash });
      return receipt.status === "success" ? 1 : 0;
    }],
    ["event heard", async () => (await pub.getFilterChanges({ filter: eventFilter }))[0].args.name],
    ["event filter logs", async () => (await pub.getFilterLogs({ filter: eventFilter })).length],
    ["block filter", async () => until(async () => {
      const hashes = await pub.getFilterChanges({ filter: blockFilter });
      return hashes.includes(receipt.blockHash) ? true : undefined;
    }, "the receipt's block in the block filter")],
    ["uninstall filters", async () => (await pub.uninstallFilter({ filter: eventFilter })) && (await pub.uninstallFilter({ filter: blockFilter }))],
    ["eip-1559 fees", async () => Number((await pub.getTransaction({ hash: receipt.transactionHash })).typeHex)],
    ["block receipts", async () => (await pub.request({ method: "eth_getBlockReceipts", params: [toHex(receipt.blockNumber)] })).length],
    ["transaction by position", async () =>
      (await pub.getTransaction({ blockNumber: receipt.blockNumber, index: receipt.transactionIndex })).hash === receipt.transactionHash],
    ["transaction count", async () => (await pub.getBlockTransactionCount({ blockNumber: receipt.blockNumber })) > 0],
    ["read", async () => Number(await pub.readContract({ address, abi, functionName: "modelCount", args: [] }))],
    ["state override", async () =>
      (await pub.call({ to: SOMEWHERE, stateOverride: [{ address: SOMEWHERE, code: READ_SLOT_0, state: [{ slot: SLOT_0, value: FORTY_TWO }] }] })).data],
    ["access list", async () => (await pub.createAccessList({ account, to: address,
      data: encodeFunctionData({ abi, functionName: "registerModel", args: ["y", ""] }) })).accessList.length > 0],
    ["syncing", async () => pub.request({ method: "eth_syncing" })],
    ["listening", async () => pub.request({ method: "net_listening" })],
    ["sha3", async () => (await pub.request({ method: "web3_sha3", params: ["0x68656c6c6f"] })) === keccak256("0x68656c6c6f")],
    ["coinbase", async () => /^0x[0-9a-fA-F]{40}$/.test(await pub.request({ method: "eth_coinbase" }))],
  ]);
}

const result = { ethers: await withEthers(), viem: await withViem() };
process.stdout.write(JSON.stringify(result, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
