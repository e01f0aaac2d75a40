// Reference: ipfs-unixfs-importer (the JS UnixFS importer) computing file CIDs from JSON on stdin.
// in:  {"options": {cidVersion, rawLeaves, chunkSize, maxChildrenPerNode} | {"profile": name},
//       "files": [{"path": "/abs/file"} | {"size": n, "seed": s}]}
// out: {"cids": ["bafk...", ...]}  one CID per file, in order
// {size, seed} files are the xorshift32 pattern of tests/registry/patterns.py, generated here
// so a 1 GiB file never crosses a pipe or touches the disk.
import { createReadStream } from "node:fs";
import { BlackHoleBlockstore } from "blockstore-core";
import { importer } from "ipfs-unixfs-importer";
import { fixedSize } from "ipfs-unixfs-importer/chunker";
import { balanced } from "ipfs-unixfs-importer/layout";

const PERIOD = 65521; // prime, so consecutive chunks never repeat

function patternBase(seed) {
  const base = new Uint8Array(PERIOD);
  let x = (seed | 1) >>> 0;
  for (let i = 0; i < PERIOD; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    base[i] = x & 0xff;
  }
  return base;
}

async function* pattern(size, seed) {
  const base = patternBase(seed);
  const piece = new Uint8Array(PERIOD * 16);
  for (let i = 0; i < 16; i++) piece.set(base, i * PERIOD);
  let offset = 0; // position in the pattern, kept modulo PERIOD
  let left = size;
  while (left > 0) {
    const n = Math.min(left, piece.length - PERIOD);
    yield piece.slice(offset, offset + n);
    offset = (offset + n) % PERIOD;
    left -= n;
  }
}

function importerOptions(o) {
  if (o.profile) return { profile: o.profile };
  return {
    cidVersion: o.cidVersion,
    rawLeaves: o.rawLeaves,
    reduceSingleLeafToSelf: true,
    chunker: fixedSize({ chunkSize: o.chunkSize }),
    layout: balanced({ maxChildrenPerNode: o.maxChildrenPerNode }),
  };
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const cids = [];
for (const f of input.files) {
  const content = f.path ? createReadStream(f.path) : pattern(f.size, f.seed);
  let last;
  for await (const entry of importer([{ content }], new BlackHoleBlockstore(),
    importerOptions(input.options))) last = entry;
  cids.push(last.cid.toString());
}
process.stdout.write(JSON.stringify({ cids }));
