// A wskit.js client driven over stdio, from the npm package wskit-client.
//
//   node wskit_client.mjs <url> [options as JSON]
//
// The tests run a copy of this file (and common.mjs) in a Node project where
// the tarball of `npm pack js/` is installed (tests/js/packed.py), so the
// import below loads what would be published. To run it by hand, do the same:
// `npm install <tarball> ws` in a folder, and copy both files there.
//
// Commands (JSON lines on stdin), `channel` optional everywhere:
//   {op: "listen", event}                 report each `event` as {event: "got", name, channel, args}
//   {op: "answer", event, mode, value?}   answer requests for `event`: mode "sum" (add the
//                                         args), "echo", "throw" (an Error with message
//                                         `value`), "reject" (the raw `value`), "slow"
//                                         (resolve with `value` after args[0] ms)
//   {op: "emit", event, args}            reports {event: "emit_failed", message} if it throws
//   {op: "emitMany", event, count}        emit `event` with 0, 1, ... count-1
//   {op: "request", tag, event, args, timeout?}   reports {event: "response", tag, ok, ...}
//   {op: "join" | "leave", tag, room}     same report
//   {op: "state", tag}                    reports connected, queued, rooms, dropped
//   {op: "close", code, reason}
// Lifecycle events are reported as open, close, reconnecting, client_error, dropped.
import WebSocket from "ws";
import { WskitClient } from "wskit-client";
import { emit, onCommand } from "./common.mjs";

const [url, optionsText] = process.argv.slice(2);
const client = new WskitClient(url, { ...JSON.parse(optionsText || "{}"), WebSocket });

client.on("open", () => emit({ event: "open" }));
client.on("close", (code, reason) => emit({ event: "close", code, reason }));
client.on("reconnecting", (attempt, delay) => emit({ event: "reconnecting", attempt, delay }));
client.on("error", (error) => emit({ event: "client_error", message: String(error.message) }));
client.on("dropped", ({ event, ...info }) => emit({ event: "dropped", name: event, ...info }));

const channelOf = (cmd) => (cmd.channel == null ? client : client.of(cmd.channel));

function report(tag, promise) {
  promise.then(
    (value) => emit({ event: "response", tag, ok: true, value: value ?? null }),
    (error) =>
      emit({
        event: "response",
        tag,
        ok: false,
        isError: error instanceof Error,
        message: error instanceof Error ? error.message : null,
        value: error instanceof Error ? null : error,
      }),
  );
}

const answers = {
  sum: () => (...args) => args.reduce((a, b) => a + b, 0),
  echo: () => (...args) => args,
  throw: (cmd) => () => {
    throw new Error(cmd.value);
  },
  reject: (cmd) => () => Promise.reject(cmd.value),
  slow: (cmd) => (ms) => new Promise((resolve) => setTimeout(() => resolve(cmd.value), ms)),
};

onCommand((cmd) => {
  const channel = channelOf(cmd);
  switch (cmd.op) {
    case "listen":
      channel.on(cmd.event, (...args) =>
        emit({ event: "got", name: cmd.event, channel: cmd.channel ?? null, args }),
      );
      break;
    case "answer":
      channel.on(cmd.event, answers[cmd.mode](cmd));
      break;
    case "emit":
      try {
        channel.emit(cmd.event, ...(cmd.args || []));
      } catch (error) {
        emit({ event: "emit_failed", message: error.message });
      }
      break;
    case "emitMany":
      for (let i = 0; i < cmd.count; i++) channel.emit(cmd.event, i);
      break;
    case "request": {
      const target = cmd.timeout === undefined ? channel : channel.timeout(cmd.timeout);
      report(cmd.tag, target.request(cmd.event, ...(cmd.args || [])));
      break;
    }
    case "join":
      report(cmd.tag, client.join(cmd.room));
      break;
    case "leave":
      report(cmd.tag, client.leave(cmd.room));
      break;
    case "state":
      emit({
        event: "state",
        tag: cmd.tag,
        connected: client.connected,
        queued: client.queued,
        rooms: client.rooms,
        dropped: client.dropped,
      });
      break;
    case "close":
      client.close(cmd.code, cmd.reason);
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
});

process.stdin.on("end", () => {
  client.close();
  process.exit(0);
});
