// prepack: copy the client from the Python package into this folder.
//
// The one source of the client is src/wskit/hub/static/ in the repository:
// wskit.mjs (the ES module) and wskit.js (the classic script that
// `python -m wskit.hub.jsclient` makes from it). The hub serves those files;
// this package ships the same bytes. Each copy is written to a temporary name
// and renamed, so that a pack running at the same time never reads half a file.
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(here, "..", "src", "wskit", "hub", "static");

for (const name of ["wskit.mjs", "wskit.js"]) {
  const data = readFileSync(join(source, name));
  const temporary = join(here, `.${name}.${process.pid}.tmp`);
  writeFileSync(temporary, data);
  renameSync(temporary, join(here, name));
}
