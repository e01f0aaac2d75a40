// Reference: @openzeppelin/merkle-tree's StandardMerkleTree on JSON from stdin.
// in:  {"types": ["string", ...], "values": [[...], ...], "multiproof": [indices]?}
// out: {"root", "proofs": [[...] per value index], "multiproof"?: {leaves, proof, proofFlags}, "dump"}
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const tree = StandardMerkleTree.of(input.values, input.types);
const out = { root: tree.root, dump: tree.dump() };
if (input.proofs !== false) out.proofs = input.values.map((_, i) => tree.getProof(i));
if (input.multiproof) out.multiproof = tree.getMultiProof(input.multiproof);
process.stdout.write(JSON.stringify(out, (_, v) => (typeof v === "bigint" ? v.toString() : v)));
