// Type declarations of wskit.mjs, the JavaScript client of the wskit hub.
//
// Keep them in step with src/wskit/hub/static/wskit.mjs: test/usage.ts uses
// every declaration, and the test suite checks it with `tsc --noEmit` (strict).

export {};

/** Reconnection delays, in ms: attempt n waits min(max, initial * factor ** (n - 1)),
 * minus up to `jitter` (0 to 1) of it at random. */
export interface Backoff {
  /** The first delay; 250 by default. */
  initial: number;
  /** The longest delay; 10000 by default. */
  max: number;
  /** How much each delay grows; 2 by default. */
  factor: number;
  /** The part of each delay taken off at random, 0 to 1; 0.5 by default. */
  jitter: number;
}

/** What a `WebSocket` (the browser's, Node 22's, or the `ws` package's) must do
 * for the client. */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** The client sets "arraybuffer" (and ignores binary messages). */
  binaryType: string;
  // The client sets these (`any`: each implementation has its own event types).
  /** Called without arguments. */
  onopen: ((event: any) => unknown) | null;
  /** Called with {data}: a string for a text message. */
  onmessage: ((event: any) => unknown) | null;
  /** Called with an event, whose `error` (if an Error) goes to the "error" event. */
  onerror: ((event: any) => unknown) | null;
  /** Called with {code, reason}. */
  onclose: ((event: any) => unknown) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor: `new WebSocket(url)` or `new WebSocket(url, protocols)`. */
export type WebSocketConstructor = new (
  url: string,
  protocols?: string | string[],
) => WebSocketLike;

/** The options of {@link WskitClient}'s constructor. */
export interface WskitClientOptions {
  /** Subprotocols to offer. */
  protocols?: string | string[];
  /** Reconnect after the connection is lost; true by default. */
  reconnect?: boolean;
  /** Reconnection delays; each field defaults on its own. */
  backoff?: Partial<Backoff>;
  /** Timeout of requests in ms, 30000 by default; 0 or Infinity: none. */
  requestTimeout?: number;
  /** Messages kept while disconnected, 1000 by default; the oldest is dropped. */
  maxQueue?: number;
  /** The WebSocket constructor; `globalThis.WebSocket` by default (in Node 20, pass the
   * `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Ask the hub for a session and recover missed room messages after reconnecting;
   * true by default. */
  recovery?: boolean;
}

/** Why missed room messages could not be recovered: the session's window passed
 * ("expired"), the room's history no longer holds them ("history"), the room's stream
 * was reset ("epoch"), the broker is down ("unavailable"), or the hub does not recover
 * ("unsupported"). */
export type RecoveryReason = "expired" | "history" | "epoch" | "unavailable" | "unsupported";

/** A room whose missed messages could not be recovered. */
export interface RecoveryFailure {
  room: string;
  reason: RecoveryReason;
}

/** What the "open" event says about recovery (also {@link WskitClient.recovery}). */
export interface OpenInfo {
  /** True only when the session was resumed and every room's missed messages replayed. */
  recovered: boolean;
  /** Whether the client presented a session (a reconnection with recovery on). */
  resumed: boolean;
  /** Why not recovered; null on a first connection or when recovered. */
  reason: RecoveryReason | null;
  /** The rooms that could not be recovered. */
  failed: RecoveryFailure[];
}

/** What the "dropped" event says about a message dropped from the full send queue. */
export interface DroppedInfo {
  /** Its event name. */
  event: string;
  /** Its channel, null for the default one. */
  channel: string | null;
  /** Whether it was a request (then rejected with Error("dropped: send queue full")). */
  request: boolean;
  /** Messages dropped so far ({@link WskitClient.dropped}). */
  total: number;
}

/** The client's own events (never sent or received) and their handlers. */
export interface LifecycleEvents {
  /** Connected, rooms rejoined (missed messages replayed), queued messages sent. */
  open: (this: WskitClient, info: OpenInfo) => unknown;
  /** A room the server joined after "open" could not be recovered. */
  recovery: (this: WskitClient, info: RecoveryFailure) => unknown;
  /** The connection closed (reconnecting follows, unless closed for good). */
  close: (this: WskitClient, code: number, reason: string) => unknown;
  /** The next connection attempt starts in `delay` ms. */
  reconnecting: (this: WskitClient, attempt: number, delay: number) => unknown;
  /** A socket error, a failed rejoin, or an event handler that threw. */
  error: (this: WskitClient, error: Error) => unknown;
  /** The send queue was full: its oldest message was dropped. */
  dropped: (this: WskitClient, info: DroppedInfo) => unknown;
}

/** Event names the default channel keeps for itself: emit() and request() refuse them,
 * and the client rejects the server's requests for them. */
export type ReservedEventName = keyof LifecycleEvents | "connect" | "disconnect" | "message";

/** A handler of an event or request from the server: its arguments are what the server
 * sent (JSON values); for a request, what it returns (or its Promise resolves to) answers,
 * and what it throws (or its Promise rejects with) rejects. */
export type EventHandler<C = WskitChannel> = (this: C, ...args: any[]) => unknown;

/** The handler for `E` on the client: a lifecycle event's own signature, else an
 * {@link EventHandler}. */
export type ClientHandler<E extends string> = E extends keyof LifecycleEvents
  ? LifecycleEvents[E]
  : EventHandler<WskitClient>;

/** `channel.timeout(ms)`: one request with its own timeout. */
export interface TimedRequest {
  /** Like {@link WskitChannel.request}, with the timeout given to `timeout()`. */
  request<T = unknown>(event: string, ...args: unknown[]): Promise<T>;
}

/** A channel of a client (`client.of(name)`): its own handlers, and its emits and
 * requests tagged with its name. */
declare class WskitChannel {
  private constructor();
  /** The channel's name. */
  readonly name: string | null;
  /** Call `handler(...args)` on each `event`; for a request from the server only the
   * first handler runs, and its result answers. */
  on(event: string, handler: EventHandler): this;
  /** Like on(), for the next `event` only. */
  once(event: string, handler: EventHandler): this;
  /** Remove `handler` from `event`, or every handler of `event` without one. */
  off(event: string, handler?: EventHandler): this;
  /** Send `event` with `args` (JSON values); queued while disconnected.
   * @throws Error("closed") after close(). */
  emit(event: string, ...args: unknown[]): this;
  /** Ask the server; resolves with its answer. Rejects with an Error when the server
   * rejects with one (with the raw value otherwise), on timeout, when the connection
   * drops after the request was sent ("disconnected"), or after close() ("closed"). */
  request<T = unknown>(event: string, ...args: unknown[]): Promise<T>;
  /** For one request with its own timeout in ms (0 or Infinity: none). */
  timeout(ms: number): TimedRequest;
}

export type { WskitChannel };

/** The client: a WebSocket connection to a wskit hub that reconnects, and its default
 * channel. */
export declare class WskitClient {
  /**
   * @param url  ws:// or wss:// URL (in a page, a path or http(s) URL of the same host)
   * @throws TypeError when there is no WebSocket constructor; the WebSocket's own error
   *   for a bad URL.
   */
  constructor(url: string, options?: WskitClientOptions);

  /** The default channel has no name. */
  readonly name: null;
  /** The resolved ws:// or wss:// URL. */
  readonly url: string;
  /** The subprotocols offered. */
  protocols: string | string[] | undefined;
  /** Whether to reconnect after the connection is lost. */
  reconnect: boolean;
  /** The reconnection delays. */
  backoff: Backoff;
  /** Timeout of requests in ms; 0 or Infinity: none. */
  requestTimeout: number;
  /** Messages kept while disconnected. */
  maxQueue: number;
  /** The WebSocket constructor in use. */
  readonly WebSocket: WebSocketConstructor;
  /** Messages dropped because the queue was full. */
  readonly dropped: number;
  /** Whether the client asks the hub for recovery. */
  readonly recoveryEnabled: boolean;
  /** Whether the last (re)connection recovered every missed room message. */
  readonly recovered: boolean;
  /** What the last "open" said; null before the first. */
  readonly recovery: OpenInfo | null;
  /** The hub's session id for this client; null before the hub gave one. */
  readonly session: string | null;
  /** Whether the connection is open and ready (rooms rejoined, queue flushed). */
  readonly connected: boolean;
  /** The rooms this client is in (or will rejoin). */
  readonly rooms: string[];
  /** How many messages wait for the connection. */
  readonly queued: number;

  /** Call `handler` on each `event`: a lifecycle event (see {@link LifecycleEvents}),
   * or an event or request from the server on the default channel. */
  on<E extends string>(event: E, handler: ClientHandler<E>): this;
  /** Like on(), for the next `event` only. */
  once<E extends string>(event: E, handler: ClientHandler<E>): this;
  /** Remove `handler` from `event`, or every handler of `event` without one. */
  off<E extends string>(event: E, handler?: ClientHandler<E>): this;
  /** Send `event` with `args` (JSON values) on the default channel; queued while
   * disconnected.
   * @throws Error for a reserved name ({@link ReservedEventName}); Error("closed")
   *   after close(). */
  emit(event: string, ...args: unknown[]): this;
  /** Ask the server; resolves with its answer (see {@link WskitChannel.request}). */
  request<T = unknown>(event: string, ...args: unknown[]): Promise<T>;
  /** For one request with its own timeout in ms (0 or Infinity: none):
   * `client.timeout(500).request("ping")`. */
  timeout(ms: number): TimedRequest;
  /** The channel `name`: the same methods, its own handlers. */
  of(name: string): WskitChannel;
  /** Join `room` (the hub needs client_rooms); rejoined after every reconnection.
   * Resolves with true; rejects when the hub refuses. */
  join(room: string): Promise<boolean>;
  /** Leave `room`; resolves with whether the client was in it. */
  leave(room: string): Promise<boolean>;
  /** Close for good: no more reconnecting; pending and queued requests reject. */
  close(code?: number, reason?: string): void;
}

export default WskitClient;
