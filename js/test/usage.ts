// Every declaration of wskit.d.ts in use: `tsc --noEmit -p js` (strict) checks it.
// It is never run; tests/js/test_package.py also checks it against the packed
// package, and checks that mistakes in such a file fail.
import WskitClientDefault, {
  WskitClient,
  type Backoff,
  type ClientHandler,
  type DroppedInfo,
  type EventHandler,
  type LifecycleEvents,
  type OpenInfo,
  type RecoveryFailure,
  type RecoveryReason,
  type ReservedEventName,
  type TimedRequest,
  type WebSocketConstructor,
  type WebSocketLike,
  type WskitChannel,
  type WskitClientOptions,
} from "wskit-client";
import { WskitClient as FromSubpath } from "wskit-client/wskit.mjs";

// A WebSocket of one's own (as the `ws` package's: a string or URL, protocols, options).
class NodeLikeSocket implements WebSocketLike {
  readyState = 0;
  binaryType = "nodebuffer";
  onopen: ((event: { type: string }) => void) | null = null;
  onmessage: ((event: { data: string | ArrayBuffer }) => void) | null = null;
  onerror: ((event: { error: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  constructor(
    readonly url: string | URL,
    readonly protocols?: string | string[],
    readonly options?: { headers?: Record<string, string> },
  ) {}
  send(data: string): void {
    void data;
  }
  close(code?: number, reason?: string): void {
    void code;
    void reason;
  }
}

const browserSocket: WebSocketConstructor = WebSocket; // the DOM's
const nodeSocket: WebSocketConstructor = NodeLikeSocket;

const backoff: Backoff = { initial: 100, max: 5000, factor: 1.5, jitter: 0 };
const options: WskitClientOptions = {
  protocols: ["chat"],
  reconnect: true,
  backoff: { initial: backoff.initial, max: backoff.max },
  requestTimeout: 5000,
  maxQueue: 100,
  WebSocket: nodeSocket,
  recovery: false,
};
const client = new WskitClient("ws://127.0.0.1:8000/ws", options);
const same: WskitClient = new WskitClientDefault("/ws", { WebSocket: browserSocket });
const third: WskitClient = new FromSubpath("wss://example.test/ws", { protocols: "chat" });
const plain = new WskitClient("ws://127.0.0.1:8000/ws");

// Properties.
const name: null = client.name;
const url: string = client.url;
const protocols: string | string[] | undefined = client.protocols;
client.reconnect = false;
const jitter: number = client.backoff.jitter;
client.requestTimeout = Infinity;
client.maxQueue = 10;
const Socket: WebSocketConstructor = client.WebSocket;
const dropped: number = client.dropped;
const recoveryEnabled: boolean = client.recoveryEnabled;
const recovered: boolean = client.recovered;
const recovery: OpenInfo | null = client.recovery;
const session: string | null = client.session;
const connected: boolean = client.connected;
const rooms: string[] = client.rooms;
const queued: number = client.queued;

// Lifecycle events: each handler gets its own arguments.
client.on("open", function (info) {
  const self: WskitClient = this;
  const resumed: boolean = info.resumed;
  const reason: RecoveryReason | null = info.reason;
  const failed: RecoveryFailure[] = info.failed;
  void [self, resumed, reason, failed, info.recovered];
});
client.on("recovery", ({ room, reason }) => {
  const why: RecoveryReason = reason;
  void [room.toUpperCase(), why];
});
client.on("close", (code, reason) => void [code.toFixed(), reason.trim()]);
client.on("reconnecting", (attempt, delay) => void (attempt + delay));
const onError = (error: Error): void => void error.message;
client.on("error", onError).off("error", onError);
client.once("dropped", (info: DroppedInfo) => {
  const request: boolean = info.request;
  const channel: string | null = info.channel;
  void [request, channel, info.event, info.total];
});
const openHandler: LifecycleEvents["open"] = (info) => void info.recovered;
const closeHandler: ClientHandler<"close"> = (code) => void code;
client.on("open", openHandler).on("close", closeHandler).off("open");

// Events and requests from the server: any JSON arguments; a request's answer is
// what the handler returns or resolves to.
client.on("chat", (who: string, text: string) => void `${who}: ${text}`);
client.on("add", (a: number, b: number) => a + b);
client.on("slow", async (ms: number) => {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return { done: true };
});
client.once("kick", function (this: WskitClient, why: string) {
  this.close(4000, why);
});
const anyHandler: EventHandler = function (...args) {
  const channel: WskitChannel = this;
  return [channel.name, ...args];
};
client.off("chat").off("add", anyHandler);

// Emitting and asking.
client.emit("chat", "me", "hello").emit("typing");
async function ask(): Promise<void> {
  const sum = await client.request<number>("add", 1, 2);
  const total: number = sum + 1;
  const raw: unknown = await client.request("ping");
  const timed: TimedRequest = client.timeout(500);
  const pong = await timed.request<string>("ping");
  const none = await client.timeout(0).request("forever");
  void [total, raw, pong.length, none];
  const joined: boolean = await client.join("lobby");
  const left: boolean = await client.leave("lobby");
  void [joined, left];
}

// Channels: the same methods, their own handlers; nothing reserved there.
const admin: WskitChannel = client.of("admin");
const adminName: string | null = admin.name;
admin.on("stats", () => ({ clients: 3 })).once("open", () => undefined);
admin.off("stats").off("open", anyHandler);
admin.emit("open", 1).emit("report", { ok: true });
async function askAdmin(): Promise<string> {
  const count = await admin.request<number>("count");
  return (await admin.timeout(100).request<string>("name")) + count;
}

const reserved: ReservedEventName[] = ["open", "connect", "disconnect", "message", "error"];

client.close();
client.close(4001, "bye");
void [same, third, plain, ask, askAdmin, reserved];
void [name, url, protocols, jitter, Socket, dropped, recoveryEnabled, recovered];
void [recovery, session, connected, rooms, queued, adminName];
