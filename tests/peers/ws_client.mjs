// A `ws` client for the interop tests.
//
//   node tests/peers/ws_client.mjs URL '{"perMessageDeflate": true, "echo": true}'
//
// Prints JSON events on stdout (open, message, ping, pong, close, error) and
// runs the JSON commands it reads on stdin (see runCommand in common.mjs).
// With "echo", every message received is sent back as it came.
import { WebSocket } from 'ws';
import { describe, emit, onCommand, runCommand } from './common.mjs';

const [url, rawOptions] = process.argv.slice(2);
const options = JSON.parse(rawOptions || '{}');

const ws = new WebSocket(url, options.protocols || [], {
  perMessageDeflate: options.perMessageDeflate ?? false,
  maxPayload: 64 * 1024 * 1024,
});

ws.on('upgrade', (res) => {
  emit({
    event: 'upgrade',
    status: res.statusCode,
    extensions: res.headers['sec-websocket-extensions'] ?? null,
  });
});
ws.on('unexpected-response', (req, res) => {
  emit({ event: 'rejected', status: res.statusCode });
  process.exit(0);
});
ws.on('open', () => {
  emit({
    event: 'open',
    extensions: ws.extensions,
    protocol: ws.protocol,
  });
});
ws.on('message', (data, isBinary) => {
  emit({ event: 'message', wireBytesRead: ws._socket.bytesRead, ...describe(data, isBinary) });
  if (options.echo) ws.send(data, { binary: isBinary });
});
ws.on('ping', (data) => emit({ event: 'ping', hex: data.toString('hex') }));
ws.on('pong', (data) => emit({ event: 'pong', hex: data.toString('hex') }));
ws.on('close', (code, reason) => {
  emit({ event: 'close', code, reason: reason.toString() });
  process.exit(0);
});
ws.on('error', (err) => emit({ event: 'error', message: String(err) }));

// Commands that arrive before the handshake is done wait for it.
const early = [];
ws.on('open', () => early.splice(0).forEach((cmd) => runCommand(ws, cmd)));
onCommand((cmd) => {
  if (ws.readyState === WebSocket.CONNECTING) early.push(cmd);
  else runCommand(ws, cmd);
});
