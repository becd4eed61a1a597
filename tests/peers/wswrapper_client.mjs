// The npm ws-wrapper 3.x client on a `ws` socket, driven over JSON lines.
//
// Usage: node wswrapper_client.mjs ws://host:port/path
//
// stdin: one command per line, each with a `seq` number:
//   {"op": "listen", "event": e, "channel": c}      report every `e` received as {"type": "event"}
//   {"op": "answer", "event": e, "channel": c, "mode": m, ...}
//        answer requests for `e`: mode "add" (sum of the arguments), "value" (cmd.value),
//        "async" (cmd.value after cmd.delay ms), "error" (throw new Error(cmd.message)),
//        "plain" (reject with cmd.value, not an Error), "never" (a promise that never settles)
//   {"op": "emit", "event": e, "args": [...], "channel": c}
//   {"op": "request", "event": e, "args": [...], "channel": c, "timeout": ms}
//   {"op": "close", "code": n, "reason": s}
// stdout: {"type": "open"}, {"type": "ack", "seq"} once a command is done, for requests
//   {"type": "result", "seq", "ok", "value" | "error"}, {"type": "event", ...} and
//   {"type": "close", "code", "reason"}.
import WebSocket from 'ws';
import WebSocketWrapper from 'ws-wrapper';

import { emit, onCommand } from './common.mjs';

const socket = new WebSocketWrapper(new WebSocket(process.argv[2]));

socket.on('open', () => emit({ type: 'open' }));
socket.on('error', (event) => emit({ type: 'socket-error', message: String(event && event.message) }));
socket.on('close', (event) => {
  emit({ type: 'close', code: event.code, reason: event.reason });
  process.exit(0);
});

function channelOf(name) {
  return name == null ? socket : socket.of(name);
}

// How a rejection looked to the client: an Error (with its properties) or a plain value.
function describeRejection(err) {
  if (err instanceof Error) {
    const props = {};
    for (const key of Object.keys(err)) props[key] = err[key];
    return { isError: true, message: err.message, props };
  }
  return { isError: false, value: err === undefined ? null : err };
}

const ANSWERS = {
  add: () => (...args) => args.reduce((a, b) => a + b, 0),
  value: (cmd) => () => cmd.value,
  async: (cmd) => () => new Promise((resolve) => setTimeout(() => resolve(cmd.value), cmd.delay || 5)),
  error: (cmd) => () => {
    throw new Error(cmd.message);
  },
  plain: (cmd) => () => Promise.reject(cmd.value),
  never: () => () => new Promise(() => {}),
};

async function request(cmd) {
  let channel = channelOf(cmd.channel);
  if (cmd.timeout) channel = channel.timeout(cmd.timeout);
  try {
    const value = await channel.request(cmd.event, ...(cmd.args || []));
    emit({ type: 'result', seq: cmd.seq, ok: true, value: value === undefined ? null : value });
  } catch (err) {
    emit({ type: 'result', seq: cmd.seq, ok: false, error: describeRejection(err) });
  }
}

onCommand((cmd) => {
  const channel = channelOf(cmd.channel);
  switch (cmd.op) {
    case 'listen':
      channel.on(cmd.event, (...args) => {
        emit({ type: 'event', channel: cmd.channel ?? null, event: cmd.event, args });
      });
      break;
    case 'answer':
      channel.on(cmd.event, ANSWERS[cmd.mode](cmd));
      break;
    case 'emit':
      channel.emit(cmd.event, ...(cmd.args || []));
      break;
    case 'request':
      request(cmd);
      return;
    case 'close':
      socket.disconnect(cmd.code, cmd.reason);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
  emit({ type: 'ack', seq: cmd.seq });
});
