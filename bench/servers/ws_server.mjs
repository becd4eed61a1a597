// Node.js `ws` peer of the wskit benchmarks: the same behaviour as every bench
// server (echo, "count", "bcast <count> <size>"; see bench/loadgen/main.go).
// Usage: node bench/servers/ws_server.mjs --port N [--compression]
import { WebSocketServer } from "ws";

const argv = process.argv.slice(2);
const port = Number(argv[argv.indexOf("--port") + 1]);
const compression = argv.includes("--compression");

const wss = new WebSocketServer({
  host: "127.0.0.1",
  port,
  backlog: 4096,
  maxPayload: 4 * 1024 * 1024,
  clientTracking: true,
  // ws defaults otherwise: context takeover when the client allows it.
  perMessageDeflate: compression,
});

const yieldToLoop = () => new Promise((resolve) => setImmediate(resolve));

async function bcast(sender, count, size) {
  const payload = Buffer.alloc(size);
  const others = [...wss.clients].filter((c) => c !== sender);
  for (let i = 0; i < count; i++) {
    for (const c of others) {
      if (c.readyState === 1) c.send(payload, { binary: true });
    }
    await yieldToLoop();
  }
  sender.send(`ok ${count}`);
}

wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => {
    if (!isBinary && data.length < 32) {
      const text = data.toString();
      if (text === "count") {
        ws.send(String(wss.clients.size));
        return;
      }
      if (text.startsWith("bcast ")) {
        const [, count, size] = text.split(" ");
        bcast(ws, Number(count), Number(size));
        return;
      }
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on("error", () => {});
});

wss.on("listening", () => {
  process.stdout.write(`READY ${port}\n`);
});
