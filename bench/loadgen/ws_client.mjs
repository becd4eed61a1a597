// B5's second client: Node.js `ws` with permessage-deflate *with* context
// takeover, which gorilla/websocket (the Go load generator) cannot offer.
// Speaks the load generator's output protocol: "MEASURE start", "MEASURE end",
// "RESULT <json>" on stdout.
//
// Usage: node bench/loadgen/ws_client.mjs --url ws://127.0.0.1:N/ --conns 64
//          --warmup 1 --duration 3 --docs FILE.json [--timeout 60]
import { readFileSync } from "node:fs";
import WebSocket from "ws";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const url = arg("url", "ws://127.0.0.1:8765/");
const nconns = Number(arg("conns", "64"));
const warmup = Number(arg("warmup", "1")) * 1000;
const duration = Number(arg("duration", "3")) * 1000;
const timeout = Number(arg("timeout", "60")) * 1000;
const docs = JSON.parse(readFileSync(arg("docs"), "utf8"));

function finish(result) {
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(result.error ? 1 : 0);
}
setTimeout(() => finish({ mode: "echo", error: `client timed out after ${timeout} ms` }), timeout).unref();

// 0 warmup, 1 measure, 2 stop
let phase = 0;
let roundTrips = 0;
let payloadBytes = 0;
const latencies = [];
const sockets = [];
let errors = 0;
let firstError = "";
let negotiated = "";

function open(i) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      // Context takeover both ways (ws's default offer); level 1 keeps the client cheap.
      perMessageDeflate: { zlibDeflateOptions: { level: 1 }, threshold: 0 },
      maxPayload: 64 * 1024 * 1024,
    });
    ws.on("upgrade", (res) => sockets.push(res.socket));
    ws.once("open", () => {
      negotiated = ws.extensions;
      resolve(ws);
    });
    ws.once("error", reject);
  });
}

function drive(ws, i) {
  return new Promise((resolve) => {
    let k = i;
    let doc;
    let start;
    const next = () => {
      if (phase === 2) {
        resolve();
        return;
      }
      doc = docs[k++ % docs.length];
      start = process.hrtime.bigint();
      ws.send(doc);
    };
    ws.on("message", (data, isBinary) => {
      if (isBinary || data.toString() !== doc) {
        errors++;
        firstError ||= "bad echo";
        resolve();
        return;
      }
      if (phase === 1) {
        roundTrips++;
        payloadBytes += doc.length;
        if (latencies.length < 4_000_000) {
          latencies.push(Number(process.hrtime.bigint() - start) / 1000);
        }
      }
      next();
    });
    ws.on("close", () => resolve());
    ws.on("error", (err) => {
      errors++;
      firstError ||= String(err);
      resolve();
    });
    next();
  });
}

const wire = () => sockets.reduce((a, s) => [a[0] + s.bytesRead, a[1] + s.bytesWritten], [0, 0]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let conns;
try {
  conns = await Promise.all(Array.from({ length: nconns }, (_, i) => open(i)));
} catch (err) {
  finish({ mode: "echo", error: `connecting: ${err}` });
}
const running = conns.map((ws, i) => drive(ws, i));
await sleep(warmup);
const [r0, w0] = wire();
process.stdout.write("MEASURE start\n");
const t0 = process.hrtime.bigint();
phase = 1;
await sleep(duration);
phase = 2;
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const [r1, w1] = wire();
process.stdout.write("MEASURE end\n");
await Promise.race([Promise.all(running), sleep(5000)]);
for (const ws of conns) ws.terminate();

latencies.sort((a, b) => a - b);
const pct = (p) => (latencies.length ? latencies[Math.floor(p * (latencies.length - 1))] : 0);
const result = {
  mode: "echo",
  client: "node-ws",
  conns: nconns,
  round_trips: roundTrips,
  seconds,
  rt_per_s: roundTrips / seconds,
  mb_per_s: payloadBytes / seconds / 1e6,
  p50_us: pct(0.5),
  p99_us: pct(0.99),
  negotiated,
  conn_errors: errors,
  first_error: firstError,
  wire_in_per_rt: roundTrips ? (r1 - r0) / roundTrips : 0,
  wire_out_per_rt: roundTrips ? (w1 - w0) / roundTrips : 0,
  payload_per_rt: roundTrips ? payloadBytes / roundTrips : 0,
};
if (!roundTrips || errors) result.error = `${errors} connection errors: ${firstError}`;
finish(result);
