#!/usr/bin/env node
// Answers `--version` and `--standard-json` like a native solc, using solc-js's JavaScript API.
// py-solc-x runs its compiler as `<binary> --version` and `<binary> --standard-json [--base-path
// P] [--allow-paths P]`; the `solcjs` command line cannot stand in, as it prints a line before
// its JSON. Imports resolve against --base-path, each --include-path, then the repo's node_modules.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const solc = require("solc");

const args = process.argv.slice(2);
const valuesOf = (flag) => args.flatMap((a, i) => (a === flag && i + 1 < args.length ? [args[i + 1]] : []));

if (args.includes("--version")) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}
if (!args.includes("--standard-json")) {
  process.stderr.write("solc_shim supports only --version and --standard-json\n");
  process.exit(1);
}

const roots = [...valuesOf("--base-path"), ...valuesOf("--include-path"), path.join(here, "..", "node_modules")];

function findImports(importPath) {
  if (path.isAbsolute(importPath) || importPath.split("/").includes("..")) {
    return { error: `import ${importPath} is outside the source roots` };
  }
  for (const root of roots) {
    const file = path.join(root, importPath);
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `${importPath} not found under ${roots.join(", ")}` };
}

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
process.stdout.write(solc.compile(Buffer.concat(chunks).toString("utf8"), { import: findImports }));
