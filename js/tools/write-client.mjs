// prepack: write the client the hub serves into this folder.
//
// The one source of the client is src/wskit/hub/static/wskit.mjs in the
// repository; the hub serves it as is and, made into a classic script by
// wskit.hub.jsclient.to_classic, as /wskit.js. Running that Python module
// (`python -m wskit.hub.jsclient DIRECTORY`, wskit taken from the
// repository's src/) writes both files here exactly as the hub serves them,
// so the package ships the same bytes. $PYTHON names the interpreter
// (python3 by default; wskit needs 3.11 or later, and nothing else).
import { execFileSync } from "node:child_process";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(here, "..", "src");
const pythonPath = [source, process.env.PYTHONPATH].filter(Boolean).join(delimiter);

execFileSync(process.env.PYTHON || "python3", ["-m", "wskit.hub.jsclient", here], {
  env: { ...process.env, PYTHONPATH: pythonPath },
  stdio: "inherit",
});
