// Reference: ipfs-unixfs-importer (the JS UnixFS importer) computing file and directory CIDs
// from JSON on stdin.
// in:  {"options": {cidVersion, rawLeaves, chunkSize, maxChildrenPerNode, shardSplitStrategy,
//                   shardSplitThresholdBytes} | {"profile": name},
//       "files": [{"path": "/abs/file"} | {"size": n, "seed": s} | {"dir": "/abs/dir", "wrap"?: true}]}
// out: {"cids": ["bafk...", ...]}  one CID per input, in order
// A {dir} is imported as `ipfs add -r --hidden` does: every entry under it, hidden files and
// empty directories included, the CID being the one the importer gives the directory itself;
// with "wrap", its entries are imported by their relative paths with wrapWithDirectory, and the
// CID is the wrapping directory's (null when there is nothing to wrap).
// {size, seed} files are the xorshift32 pattern of tests/registry/patterns.py, generated here
// so a 1 GiB file never crosses a pipe or touches the disk.
import { createReadStream, readdirSync } from "node:fs";
import { basename, join } from "node:path";
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
    shardSplitStrategy: o.shardSplitStrategy,
    shardSplitThresholdBytes: o.shardSplitThresholdBytes,
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
// Directory entries for the importer: paths under the directory's own name, directories
// (empty ones too) as entries without content.
function* tree(dir, prefix) {
  yield { path: prefix };
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    const path = `${prefix}/${d.name}`;
    if (d.isDirectory()) yield* tree(join(dir, d.name), path);
    else yield { path, content: createReadStream(join(dir, d.name)) };
  }
}

const cids = [];
for (const f of input.files) {
  let candidates, wanted, options = importerOptions(input.options);
  if (f.dir && f.wrap) {
    wanted = "";
    candidates = [...tree(f.dir, "")].filter((e) => e.path !== "").map((e) => ({ ...e, path: e.path.slice(1) }));
    options = { ...options, wrapWithDirectory: true };
  } else if (f.dir) {
    wanted = basename(f.dir);
    candidates = tree(f.dir, wanted);
  } else {
    candidates = [{ content: f.path ? createReadStream(f.path) : pattern(f.size, f.seed) }];
  }
  let last;
  for await (const entry of importer(candidates, new BlackHoleBlockstore(), options)) {
    if (wanted === undefined || entry.path === wanted) last = entry;
  }
  cids.push(last ? last.cid.toString() : null);
}
process.stdout.write(JSON.stringify({ cids }));
