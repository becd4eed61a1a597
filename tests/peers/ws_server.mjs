// `ws` servers for the interop tests, one per configuration, in one process.
//
//   node tests/peers/ws_server.mjs '{"plain": {"perMessageDeflate": false}, ...}'
//
// Each named server listens on 127.0.0.1 with an OS-chosen port; once all of
// them listen it prints {"event": "ready", "ports": {name: port}}. Every
// connection echoes what it receives, except text messages starting with
// "cmd:", which hold a JSON command for the server to run on that connection
// (see runCommand in common.mjs). Events are printed with the server's name.
import { WebSocketServer } from 'ws';
import { describe, emit, runCommand } from './common.mjs';

const configs = JSON.parse(process.argv[2] || '{"default": {}}');
const ports = {};
let pending = Object.keys(configs).length;

for (const [name, config] of Object.entries(configs)) {
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: config.perMessageDeflate ?? false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (protocols) => {
      for (const p of config.protocols || []) if (protocols.has(p)) return p;
      return false;
    },
  });
  wss.on('listening', () => {
    ports[name] = wss.address().port;
    if (--pending === 0) emit({ event: 'ready', ports });
  });
  wss.on('connection', (ws, req) => {
    emit({
      event: 'connection',
      server: name,
      path: req.url,
      offer: req.headers['sec-websocket-extensions'] ?? null,
      extensions: ws.extensions,
      protocol: ws.protocol,
    });
    ws.on('message', (data, isBinary) => {
      if (!isBinary && data.subarray(0, 4).toString('latin1') === 'cmd:') {
        runCommand(ws, JSON.parse(data.subarray(4).toString('utf8')));
        return;
      }
      emit({ event: 'message', server: name, ...describe(data, isBinary) });
      ws.send(data, { binary: isBinary });
    });
    ws.on('ping', (data) => emit({ event: 'ping', server: name, hex: data.toString('hex') }));
    ws.on('pong', (data) => emit({ event: 'pong', server: name, hex: data.toString('hex') }));
    ws.on('close', (code, reason) => {
      emit({ event: 'close', server: name, code, reason: reason.toString() });
    });
    ws.on('error', (err) => emit({ event: 'error', server: name, message: String(err) }));
  });
}

// The test closes stdin (or kills us) when it is done.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
