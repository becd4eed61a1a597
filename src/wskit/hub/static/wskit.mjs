// wskit.js: the JavaScript client of the wskit hub (wskit.hub.Hub).
//
// One source, no build step, no dependencies. The hub serves this file as
// an ES module at /wskit.mjs and, with the `export` keywords removed and
// wrapped in a function that sets globalThis.WskitClient, as a classic
// script at /wskit.js. Keep it that way: `export` only at the start of the
// `export class WskitClient` line and on the final `export default` line;
// it imports nothing and has no top-level await.
//
// Wire format (ws-wrapper's JSON protocol), one JSON object per text message:
//   {"a": [event, ...args], "c": channel}           an event
//   {"i": id, "a": [event, ...args], "c": channel}  a request
//   {"i": id, "d": data}                            a request's answer
//   {"i": id, "e": error, "_": 1}                   its rejection (`_`: e is an Error)
//   {"i": id, "x": 1}                               the sender gave up on the request
// Other messages (not JSON, not an object, or with "ws-wrapper": false) are ignored.
// A room message of a hub with recovery on also carries "r" (its room) and "o"
// ("epoch:offset", its place in the room's stream), which ws-wrapper ignores.
//
// Usage:
//   const client = new WskitClient("ws://host/ws");
//   client.on("chat", (who, text) => { ... });
//   client.emit("chat", "me", "hello");
//   const sum = await client.request("add", 1, 2);
//   const pong = await client.timeout(500).request("ping");  // its own timeout
//   client.of("admin").on("stats", () => collectStats());  // answers requests
//   await client.join("lobby");                           // rejoined after reconnects
//
// Lifecycle events, on the client only (never from or to the wire):
//   open (info)               connected, rooms rejoined (missed messages replayed),
//                             queued messages sent; info = {recovered, resumed, reason, failed}
//   recovery (info)           a room the server joined after "open" could not be
//                             recovered; info = {room, reason}
//   close (code, reason)      the connection closed (reconnecting follows, unless closed for good)
//   reconnecting (attempt, delay)  the next connection attempt starts in `delay` ms
//   error (error)             a socket error, a failed rejoin, or an event handler that threw
//   dropped (info)            the send queue was full: its oldest message was dropped;
//                             info = {event, channel, request, total}
//
// Handlers: several per event; an event calls them all in order, a request
// from the server only the first (its return value, or what its Promise
// resolves to, is the answer; a thrown Error or rejection rejects with
// {"message"} and "_": 1, any other thrown value is sent as is). `this` is
// the channel. A request the server cancels ("x") gets no answer. A request
// for an event with no handler is rejected with "No event listener for 'X'".
//
// Delivery guarantees, by design:
// * While disconnected (or before the first connection), emit() and
//   request() queue their messages, at most `maxQueue`. When the queue is
//   full the OLDEST message is dropped (a queued request is then rejected
//   with Error("dropped: send queue full")) and "dropped" is emitted. Fresh
//   messages are usually worth more than stale ones, and the newest state
//   wins in most applications.
// * On (re)connection the client first rejoins its rooms (waiting for the
//   answers, so room emits after that reach it), then sends the queued
//   messages in order, then emits "open".
// * A request already SENT when the connection drops is rejected with
//   Error("disconnected"): the server may or may not have run it, and
//   sending it again could run it twice. Retry it yourself when it is
//   idempotent. A request still QUEUED (never sent) waits for the next
//   connection, within its timeout.
// * After close() (or a lost connection with reconnect: false), emit()
//   throws and request() rejects with Error("closed").
//
// Recovery of missed room messages (a hub with recovery on; see wskit.hub.recovery):
// the WebSocket URL carries `wskit=1`, then `wskit={"s": session, "p": {room:
// "epoch:offset"}}` once the hub gave a session (its "welcome" on the _wskit
// channel). The client keeps the last position of every room from the "o" of
// room messages and from the hub's "joined" notices (so a room where nothing
// arrived yet is recovered too). On reconnection it asks "hello" first, then
// rejoins: the hub writes what was missed, in order, before answering each
// join. "open" then says whether everything was recovered: `client.recovered`
// is true only when the session was resumed and every room replayed; false
// with `reason` "expired" (the window passed), "history" (no longer kept),
// "epoch" (the stream was reset), "unavailable" (the broker is down), or null
// on a first connection. Reload the application's state when it is false.

const RESERVED = new Set([
  "open",
  "close",
  "reconnecting",
  "error",
  "dropped",
  "recovery",
  "connect",
  "disconnect",
  "message",
]);
const ROOMS_CHANNEL = "_wskit";
const DEFAULT_BACKOFF = { initial: 250, max: 10000, factor: 2, jitter: 0.5 };
const OPEN = 1;

function isObject(value) {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function toError(value, fallback) {
  if (value instanceof Error) return value;
  return new Error(typeof value === "string" ? value : fallback);
}

// A rejection as it goes on the wire: an Error becomes {message} with "_": 1.
function rejection(id, error) {
  if (error instanceof Error) {
    return { i: id, e: { message: error.message || error.name || "Error" }, _: 1 };
  }
  return { i: id, e: error === undefined ? null : error };
}

// A rejection as it comes off the wire.
function errorFrom(value, isError) {
  if (!isError) return value;
  const message = isObject(value) ? value.message : value;
  const error = new Error(message === undefined ? "request failed" : String(message));
  if (isObject(value)) {
    for (const [key, field] of Object.entries(value)) {
      if (key !== "message" && key !== "stack") error[key] = field;
    }
  }
  return error;
}

function resolveUrl(url) {
  const text = String(url);
  const location = globalThis.location;
  if (/^wss?:/i.test(text) || !location || !location.href) return text;
  // A relative or http(s) URL in a page: the same host, over ws(s).
  const resolved = new URL(text, location.href);
  if (resolved.protocol === "http:") resolved.protocol = "ws:";
  else if (resolved.protocol === "https:") resolved.protocol = "wss:";
  return resolved.href;
}

class WskitChannel {
  // A channel of a client: its own handlers; emits and requests tagged with its name.
  // The default channel is the client itself (name null).
  constructor(client, name) {
    this._client = client;
    this.name = name;
    this._handlers = new Map(); // event -> [{fn, once}]
  }

  /** Call `handler(...args)` on each `event`; for a request, its return value
   * (or Promise) answers, and a throw (or rejection) rejects. */
  on(event, handler) {
    if (typeof handler !== "function") throw new TypeError("handler must be a function");
    let list = this._handlers.get(event);
    if (!list) this._handlers.set(event, (list = []));
    list.push({ fn: handler, once: false });
    return this;
  }

  /** Like on(), for the next `event` only. */
  once(event, handler) {
    this.on(event, handler);
    this._handlers.get(event).at(-1).once = true;
    return this;
  }

  /** Remove `handler` from `event`, or every handler of `event` without one. */
  off(event, handler) {
    const list = this._handlers.get(event);
    if (!list) return this;
    const kept = handler === undefined ? [] : list.filter((entry) => entry.fn !== handler);
    if (kept.length) this._handlers.set(event, kept);
    else this._handlers.delete(event);
    return this;
  }

  /** Send `event` with `args` (JSON values); queued while disconnected. */
  emit(event, ...args) {
    this._checkName(event);
    this._client._emit(this.name, event, args);
    return this;
  }

  /** Ask the server; resolves with its answer. Rejects with an Error when the
   * server rejects with one (with the raw value otherwise), on timeout, or
   * when the connection drops after the request was sent. */
  request(event, ...args) {
    this._checkName(event);
    return this._client._request(this.name, event, args, undefined);
  }

  /** For one request with its own timeout in ms (0 or Infinity: none):
   * `client.timeout(500).request("ping")`. */
  timeout(ms) {
    return {
      request: (event, ...args) => {
        this._checkName(event);
        return this._client._request(this.name, event, args, ms);
      },
    };
  }

  _checkName(event) {
    if (typeof event !== "string") throw new TypeError("event name must be a string");
    if (this.name === null && RESERVED.has(event)) {
      throw new Error(`'${event}' is a reserved event name`);
    }
  }

  // The handlers for one incoming event, once-handlers removed.
  _take(event, onlyFirst) {
    const list = this._handlers.get(event);
    if (!list || !list.length) return [];
    const taken = onlyFirst ? [list[0]] : list.slice();
    const kept = list.filter((entry) => !(entry.once && taken.includes(entry)));
    if (kept.length) this._handlers.set(event, kept);
    else this._handlers.delete(event);
    return taken.map((entry) => entry.fn);
  }

  // Call the local handlers of a lifecycle event; never throws.
  _fire(event, ...args) {
    for (const fn of this._take(event, false)) {
      try {
        fn.apply(this, args);
      } catch (error) {
        if (event !== "error") this._client._reportError(error);
      }
    }
  }
}

export class WskitClient extends WskitChannel {
  /**
   * @param {string} url  ws:// or wss:// URL (in a page, a path or http(s) URL of the same host works)
   * @param {object} [options]
   * @param {string|string[]} [options.protocols]  subprotocols to offer
   * @param {boolean} [options.reconnect=true]  reconnect after the connection is lost
   * @param {object} [options.backoff]  {initial: 250, max: 10000, factor: 2, jitter: 0.5} (ms);
   *   attempt n waits min(max, initial * factor ** (n - 1)), minus up to `jitter` of it at random
   * @param {number} [options.requestTimeout=30000]  ms; 0 or Infinity: no timeout
   * @param {number} [options.maxQueue=1000]  messages kept while disconnected (oldest dropped)
   * @param {Function} [options.WebSocket]  WebSocket constructor (in Node: the `ws` package's)
   * @param {boolean} [options.recovery=true]  ask the hub for a session and recover missed
   *   room messages after reconnecting
   */
  constructor(url, options = {}) {
    super(null, null);
    this._client = this;
    this.url = resolveUrl(url);
    this.protocols = options.protocols;
    this.reconnect = options.reconnect ?? true;
    this.backoff = { ...DEFAULT_BACKOFF, ...(options.backoff || {}) };
    this.requestTimeout = options.requestTimeout ?? 30000;
    this.maxQueue = Math.max(0, options.maxQueue ?? 1000);
    this.WebSocket = options.WebSocket || globalThis.WebSocket;
    if (typeof this.WebSocket !== "function") {
      throw new TypeError("no WebSocket constructor: pass options.WebSocket");
    }
    /** Messages dropped because the queue was full. */
    this.dropped = 0;
    this.recoveryEnabled = options.recovery ?? true;
    /** Whether the last (re)connection recovered every missed room message. */
    this.recovered = false;
    /** What the last "open" said: {recovered, resumed, reason, failed}. */
    this.recovery = null;
    /** The hub's session id for this client (null before the first welcome). */
    this.session = null;
    this._positions = new Map(); // room -> "epoch:offset"
    this._welcome = null; // the welcome of the current connection
    this._failed = []; // rooms whose recovery failed on this connection
    this._channels = new Map();
    this._rooms = new Set();
    this._queue = []; // [{text, request, event, channel}]
    this._pending = new Map(); // id -> {resolve, reject, timer, sent, entry, event}
    this._incoming = new Map(); // id -> token while a handler works on a server request
    this._nextId = 1;
    this._socket = null;
    this._ready = false; // open, rooms rejoined, queue flushed
    this._closed = false;
    this._attempt = 0;
    this._timer = null;
    this._connect(true);
  }

  /** Whether the connection is open and ready (rooms rejoined, queue flushed). */
  get connected() {
    return this._ready;
  }

  /** The rooms this client is in (or will rejoin). */
  get rooms() {
    return [...this._rooms];
  }

  /** How many messages wait for the connection. */
  get queued() {
    return this._queue.length;
  }

  /** The channel `name`: same on/once/off/emit/request, its own handlers. */
  of(name) {
    if (typeof name !== "string") throw new TypeError("channel name must be a string");
    let channel = this._channels.get(name);
    if (!channel) this._channels.set(name, (channel = new WskitChannel(this, name)));
    return channel;
  }

  /** Join `room` (the hub needs client_rooms); rejoined after every reconnect. */
  async join(room) {
    this._rooms.add(room);
    try {
      return await this._request(ROOMS_CHANNEL, "join", [room], undefined);
    } catch (error) {
      // Refused (or timed out): forget the room. Lost with the connection, or
      // dropped from a full queue: keep it, the next connection rejoins it.
      if (!(error instanceof Error && /^(disconnected|closed|dropped)\b/.test(error.message))) {
        this._rooms.delete(room);
      }
      throw error;
    }
  }

  /** Leave `room`; resolves with whether the client was in it. */
  leave(room) {
    this._rooms.delete(room);
    this._positions.delete(room);
    return this._request(ROOMS_CHANNEL, "leave", [room], undefined);
  }

  /** Close for good: no more reconnecting; pending and queued requests reject. */
  close(code = 1000, reason = "") {
    if (this._closed) return;
    this._closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    this._ready = false;
    this._failPending("closed", true);
    const socket = this._socket;
    if (socket && socket.readyState <= OPEN) {
      try {
        socket.close(code, reason);
      } catch {
        socket.close();
      }
    } else {
      this._socket = null;
      this._fire("close", code, reason);
    }
  }

  // -- connecting -------------------------------------------------------------------

  _connect(initial = false) {
    this._timer = null;
    let socket;
    this._welcome = null;
    this._failed = [];
    const url = this._socketUrl();
    try {
      socket =
        this.protocols === undefined
          ? new this.WebSocket(url)
          : new this.WebSocket(url, this.protocols);
    } catch (error) {
      if (initial) throw error; // a bad URL: say so at once
      this._fire("error", error);
      this._lost(1006, "");
      return;
    }
    this._socket = socket;
    socket.binaryType = "arraybuffer";
    socket.onopen = () => this._opened(socket);
    socket.onmessage = (event) => {
      if (this._socket === socket) this._received(socket, event.data);
    };
    socket.onerror = (event) => {
      if (this._socket !== socket) return;
      // "close" follows: no console noise for each failed attempt.
      const error = event && event.error instanceof Error ? event.error : new Error("WebSocket error");
      this._fire("error", error);
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._socket = null;
      this._lost(event.code, event.reason);
    };
  }

  // The URL of the next connection: the session and positions to recover from.
  _socketUrl() {
    if (!this.recoveryEnabled) return this.url;
    const state =
      this.session === null
        ? "1"
        : JSON.stringify({ s: this.session, p: Object.fromEntries(this._positions) });
    const hash = this.url.indexOf("#");
    const base = hash >= 0 ? this.url.slice(0, hash) : this.url;
    return `${base}${base.includes("?") ? "&" : "?"}wskit=${encodeURIComponent(state)}`;
  }

  async _opened(socket) {
    if (this._socket !== socket) return;
    this._attempt = 0;
    // Resuming: the hub's answer comes after its welcome (and anything it replayed).
    const resuming = this.recoveryEnabled && this.session !== null;
    let hello = null;
    if (resuming) {
      try {
        hello = await this._request(ROOMS_CHANNEL, "hello", [], undefined, socket);
      } catch {
        hello = null; // a hub without recovery
      }
      if (this._socket !== socket || this._closed || socket.readyState !== OPEN) return;
    }
    // Rejoin the rooms before anything queued goes out.
    const rooms = [...this._rooms];
    const results = await Promise.allSettled(
      rooms.map((room) => this._request(ROOMS_CHANNEL, "join", [room], undefined, socket)),
    );
    // Closing already (its close event follows): keep the queue for the next one.
    if (this._socket !== socket || this._closed || socket.readyState !== OPEN) return;
    results.forEach((result, index) => {
      if (result.status === "rejected") {
        this._rooms.delete(rooms[index]);
        this._positions.delete(rooms[index]);
        const reason = result.reason instanceof Error ? result.reason.message : result.reason;
        this._reportError(new Error(`could not rejoin room '${rooms[index]}': ${reason}`));
      }
    });
    const queue = this._queue;
    this._queue = [];
    for (const entry of queue) this._write(socket, entry);
    this._ready = true;
    const welcome = hello || this._welcome;
    const failed = this._failed.slice();
    let reason = null;
    if (resuming) {
      reason = !welcome ? "unsupported" : welcome.recovered ? null : welcome.reason || "expired";
      if (!reason && failed.length) reason = failed[0].reason;
    }
    this.recovered = resuming && !reason;
    this.recovery = { recovered: this.recovered, resumed: resuming, reason, failed };
    this._fire("open", { ...this.recovery });
  }

  _lost(code, reason) {
    this._ready = false;
    this._failPending("disconnected", false);
    this._incoming.clear();
    this._fire("close", code, reason);
    if (this._closed || !this.reconnect) {
      if (!this._closed) {
        this._closed = true;
        this._failPending("closed", true);
      }
      return;
    }
    this._attempt += 1;
    const { initial, max, factor, jitter } = this.backoff;
    const base = Math.min(max, initial * factor ** (this._attempt - 1));
    const delay = Math.round(base * (1 - Math.min(1, Math.max(0, jitter)) * Math.random()));
    this._fire("reconnecting", this._attempt, delay);
    if (!this._closed) this._timer = setTimeout(() => this._connect(), delay);
  }

  // An error of the application's (a handler threw, a room was refused).
  _reportError(error) {
    if (this._handlers.has("error")) this._fire("error", error);
    else if (globalThis.console) console.error("wskit:", error);
  }

  // -- sending ----------------------------------------------------------------------

  // An event: sent now if ready, else queued.
  _emit(channel, event, args) {
    if (this._closed) throw new Error("closed");
    const message = channel === null ? { a: [event, ...args] } : { c: channel, a: [event, ...args] };
    this._enqueue({ text: JSON.stringify(message), request: null, event, channel });
  }

  // Send an entry now if ready, else queue it (dropping the oldest when full).
  _enqueue(entry) {
    if (this._ready && this._socket && this._socket.readyState === OPEN) {
      this._write(this._socket, entry);
      return;
    }
    if (this._queue.length >= this.maxQueue) {
      const oldest = this.maxQueue > 0 ? this._queue.shift() : entry;
      this.dropped += 1;
      if (oldest.request) {
        this._settle(oldest.request.id, false, new Error("dropped: send queue full"));
      }
      this._fire("dropped", {
        event: oldest.event,
        channel: oldest.channel,
        request: Boolean(oldest.request),
        total: this.dropped,
      });
      if (oldest === entry) return;
    }
    this._queue.push(entry);
  }

  _write(socket, entry) {
    socket.send(entry.text);
    if (entry.request) entry.request.sent = true;
  }

  _sendNow(socket, message) {
    if (socket && socket === this._socket && socket.readyState === OPEN) {
      let text;
      try {
        text = JSON.stringify(message);
      } catch (error) {
        // An answer that is not JSON (a BigInt, a cycle): reject the request instead.
        text = JSON.stringify(rejection(message.i, new Error(`cannot send the result: ${error.message}`)));
      }
      socket.send(text);
    }
  }

  // A request: through the queue, or straight on `socket` (rejoining rooms).
  _request(channel, event, args, timeout, socket) {
    return new Promise((resolve, reject) => {
      if (this._closed) {
        reject(new Error("closed"));
        return;
      }
      const id = this._nextId++;
      const message = { i: id, a: [event, ...args] };
      if (channel !== null) message.c = channel;
      const record = { id, resolve, reject, timer: null, sent: false, entry: null, event };
      const entry = { text: JSON.stringify(message), request: record, event, channel };
      record.entry = entry;
      this._pending.set(id, record);
      const ms = timeout === undefined ? this.requestTimeout : timeout;
      if (ms > 0 && ms !== Infinity) {
        record.timer = setTimeout(() => this._timedOut(record, ms), ms);
      }
      if (socket) this._write(socket, entry);
      else this._enqueue(entry);
    });
  }

  _timedOut(record, ms) {
    if (this._pending.get(record.id) !== record) return;
    if (record.sent) {
      this._sendNow(this._socket, { i: record.id, x: 1 });
    } else {
      const index = this._queue.indexOf(record.entry);
      if (index >= 0) this._queue.splice(index, 1);
    }
    this._settle(record.id, false, new Error(`request '${record.event}' timed out after ${ms} ms`));
  }

  _settle(id, ok, value) {
    const record = this._pending.get(id);
    if (!record) return;
    this._pending.delete(id);
    clearTimeout(record.timer);
    if (ok) record.resolve(value);
    else record.reject(value);
  }

  // Reject the requests already sent (all of them when `all`, and empty the queue).
  _failPending(message, all) {
    for (const record of [...this._pending.values()]) {
      if (all || record.sent) this._settle(record.id, false, new Error(message));
    }
    if (all) this._queue = [];
  }

  // -- receiving --------------------------------------------------------------------

  _received(socket, data) {
    if (typeof data !== "string") return;
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      return;
    }
    if (!isObject(message) || message["ws-wrapper"] === false) return;
    const { i: id, c: channelName, a: args } = message;
    if (id !== undefined && typeof id !== "number" && typeof id !== "string") return;
    if (channelName !== undefined && channelName !== null && typeof channelName !== "string") return;
    if (args !== undefined) {
      if (!Array.isArray(args) || typeof args[0] !== "string") return;
      if (typeof message.r === "string" && typeof message.o === "string") {
        this._positions.set(message.r, message.o);
      }
      if (channelName === ROOMS_CHANNEL && id === undefined && this._notice(args)) return;
      this._dispatch(socket, channelName ?? null, args[0], args.slice(1), id);
    } else if (id === undefined) {
      return;
    } else if ("x" in message) {
      this._incoming.delete(id);
    } else if ("e" in message) {
      this._settle(id, false, errorFrom(message.e, Boolean(message._)));
    } else {
      this._settle(id, true, message.d);
    }
  }

  // The hub's recovery notices on the _wskit channel; true when `args` was one.
  _notice([event, ...args]) {
    if (event === "welcome" && isObject(args[0])) {
      this._welcome = args[0];
      if (typeof args[0].session === "string") this.session = args[0].session;
    } else if (event === "joined" && typeof args[0] === "string") {
      const [room, position, result, reason] = args;
      if (typeof position === "string") this._positions.set(room, position);
      if (result === false) {
        this._failed.push({ room, reason: reason || "history" });
        if (this._ready) {
          this.recovered = false;
          if (this.recovery) this.recovery = { ...this.recovery, recovered: false, reason: reason || "history" };
          this._fire("recovery", { room, reason: reason || "history" });
        }
      }
    } else if (event === "position" && typeof args[0] === "string" && typeof args[1] === "string") {
      this._positions.set(args[0], args[1]);
    } else {
      return false;
    }
    return true;
  }

  _dispatch(socket, channelName, event, args, id) {
    const isRequest = id !== undefined;
    const channel = channelName === null ? this : this._channels.get(channelName);
    const where = channelName === null ? "" : ` on channel '${channelName}'`;
    if (channelName === null && RESERVED.has(event)) {
      if (isRequest) this._sendNow(socket, rejection(id, new Error(`'${event}' is a reserved event name`)));
      return;
    }
    const handlers = channel ? channel._take(event, isRequest) : [];
    if (!handlers.length) {
      if (isRequest) {
        this._sendNow(socket, rejection(id, new Error(`No event listener for '${event}'${where}`)));
      }
      return;
    }
    if (!isRequest) {
      for (const fn of handlers) {
        try {
          const result = fn.apply(channel, args);
          if (result && typeof result.then === "function") {
            result.then(undefined, (error) => this._reportError(toError(error, String(error))));
          }
        } catch (error) {
          this._reportError(error);
        }
      }
      return;
    }
    // The answer goes out unless the server cancelled the request ("x") or the
    // connection changed meanwhile (ids restart with each connection).
    const token = {};
    this._incoming.set(id, token);
    const answer = (message) => {
      if (this._incoming.get(id) !== token) return;
      this._incoming.delete(id);
      this._sendNow(socket, message);
    };
    new Promise((resolve) => resolve(handlers[0].apply(channel, args))).then(
      (data) => answer({ i: id, d: data }),
      (error) => answer(rejection(id, error)),
    );
  }
}

export default WskitClient;
