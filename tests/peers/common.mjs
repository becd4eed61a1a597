// Helpers shared by the node peers: JSON-lines I/O and test payloads.
import { createHash } from 'node:crypto';
import { createInterface } from 'node:readline';

export function emit(event) {
  process.stdout.write(JSON.stringify(event) + '\n');
}

export function onCommand(handler) {
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (!line.trim()) return;
    try {
      handler(JSON.parse(line));
    } catch (err) {
      emit({ event: 'error', message: String(err && err.stack ? err.stack : err) });
    }
  });
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

// Same bytes as pattern() in tests/interop/support.py.
export function pattern(size, binary) {
  const buf = Buffer.alloc(size);
  for (let i = 0; i < size; i++) {
    const j = i & 0xffff;
    const b = (j * 7 + (j >> 8)) & 0xff;
    buf[i] = binary ? b : ALPHABET.charCodeAt(b & 63);
  }
  return binary ? buf : buf.toString('latin1');
}

export function describe(data, isBinary) {
  const buf = Buffer.isBuffer(data) ? data : Buffer.concat(data);
  const info = {
    binary: isBinary,
    length: buf.length,
    sha256: createHash('sha256').update(buf).digest('hex'),
  };
  if (buf.length <= 256) {
    info.data = isBinary ? buf.toString('hex') : buf.toString('utf8');
  }
  return info;
}

// Send a message as fragments: parts are strings, or hex when `hex` is set
// (always for binary; for text it lets a fragment end inside a character).
// `compress` is ws's per-message flag; it must be the same for every fragment.
export function sendFragments(ws, parts, binary, hex = binary, compress = false) {
  parts.forEach((part, i) => {
    const payload = hex ? Buffer.from(part, 'hex') : part;
    ws.send(payload, { binary, fin: i === parts.length - 1, compress });
  });
}

// Run one stdin command against a connected socket.
export function runCommand(ws, cmd) {
  switch (cmd.op) {
    case 'send':
      if (cmd.binary) ws.send(Buffer.from(cmd.hex, 'hex'), { binary: true });
      else ws.send(cmd.text, { binary: false });
      break;
    case 'sendPattern':
      ws.send(pattern(cmd.size, cmd.binary), { binary: cmd.binary });
      break;
    case 'fragments':
      sendFragments(ws, cmd.parts, !!cmd.binary, !!(cmd.binary || cmd.hex), !!cmd.compress);
      break;
    case 'ping':
      ws.ping(Buffer.from(cmd.hex || '', 'hex'));
      break;
    case 'close':
      ws.close(cmd.code, cmd.reason);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}
