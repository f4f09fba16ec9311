// Writes every dashboard of this directory as JSON: `npm run build` (into dashboards/),
// or `npm run build -- --out DIR` (agent/tests/dashboards.rs builds into a temporary
// directory and compares byte for byte with the committed files). Stable formatting:
// JSON.stringify with 2-space indentation, keys in the builders' order, one final newline.

import * as fs from "node:fs";
import * as path from "node:path";

import { skewscopeDashboard } from "./skewscope";

/** File name -> the dashboard it holds. */
const DASHBOARDS: Record<string, () => object> = {
  "skewscope.json": skewscopeDashboard,
};

function outDir(argv: string[]): string {
  const i = argv.indexOf("--out");
  if (i >= 0) {
    const dir = argv[i + 1];
    if (dir === undefined) throw new Error("--out needs a directory");
    return dir;
  }
  // dist/build.js -> dashboards/
  return path.resolve(__dirname, "..");
}

const dir = outDir(process.argv.slice(2));
fs.mkdirSync(dir, { recursive: true });
for (const [name, build] of Object.entries(DASHBOARDS)) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(build(), null, 2) + "\n");
  console.log(`wrote ${file}`);
}
