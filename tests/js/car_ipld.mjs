// Reference: @ipld/car reading and writing CARv1 files, driven by JSON on stdin.
// in:  {"read": "/path.car"}
//      -> {"version", "roots": [cid], "blocks": [{"cid", "size", "sha256"}]}  (file order)
// in:  {"write": "/path.car", "size": n, "seed": s, "profile": "unixfs-v1-2025"}
//      imports the unixfs_importer.mjs pattern file with ipfs-unixfs-importer and writes all
//      its blocks (in the importer's order, children first) -> {"root": cid}
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { CarReader, CarWriter } from "@ipld/car";
import { importer } from "ipfs-unixfs-importer";

const PERIOD = 65521;

function* pattern(size, seed) {
  const base = new Uint8Array(PERIOD);
  let x = (seed | 1) >>> 0;
  for (let i = 0; i < PERIOD; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    base[i] = x & 0xff;
  }
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += PERIOD) out.set(base.subarray(0, Math.min(PERIOD, size - i)), i);
  yield out;
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

if (input.read) {
  const reader = await CarReader.fromIterable(createReadStream(input.read));
  const blocks = [];
  for await (const { cid, bytes } of reader.blocks()) {
    blocks.push({ cid: cid.toString(), size: bytes.length,
      sha256: createHash("sha256").update(bytes).digest("hex") });
  }
  const roots = (await reader.getRoots()).map((c) => c.toString());
  process.stdout.write(JSON.stringify({ version: reader.version, roots, blocks }));
} else {
  const written = []; // the importer's puts, with their real codecs (MemoryBlockstore forgets them)
  const store = { put: async (cid, bytes) => { written.push({ cid, bytes }); return cid; } };
  let last;
  for await (const entry of importer([{ content: pattern(input.size, input.seed) }], store,
    { profile: input.profile })) last = entry;
  const { writer, out } = CarWriter.create([last.cid]);
  const done = pipeline(Readable.from(out), createWriteStream(input.write));
  for (const block of written) await writer.put(block);
  await writer.close();
  await done;
  process.stdout.write(JSON.stringify({ root: last.cid.toString() }));
}
