// The wskit chat demo: the page side of wskit.demo.ChatApp.
//
// Requests: join(nickname, room) -> {room, nickname, history, users}, say(text), rooms().
// Events in: chat, users, typing, notice, rooms. Events out: typing(active).
// After a reconnect the hub has forgotten this page, so "open" joins again.
import { WskitClient } from "/wskit.mjs";

const $ = (selector) => document.querySelector(selector);
const ui = {
  status: $("#status"),
  where: $("#where"),
  rooms: $("#rooms"),
  roomForm: $("#room-form"),
  newRoom: $("#new-room"),
  users: $("#users"),
  userCount: $("#user-count"),
  messages: $("#messages"),
  typing: $("#typing"),
  composer: $("#composer"),
  text: $("#text"),
  send: $("#send"),
  error: $("#error"),
  welcome: $("#welcome"),
  joinForm: $("#join-form"),
  nick: $("#nick"),
  room: $("#room"),
  joinError: $("#join-error"),
};

const TYPING_IDLE = 2500; // ms without a keystroke before "stopped typing"
const TYPING_EXPIRE = 8000; // ms before someone else's indicator goes stale

const state = { nickname: null, room: null, typingSent: false, typingTimer: null };
const typists = new Map(); // nick -> expiry timer

const client = new WskitClient("/ws");
window.chat = client; // for the curious (and for the tests)

// -- connection -------------------------------------------------------------------

function setStatus(kind, text) {
  ui.status.className = `status ${kind}`;
  ui.status.textContent = text;
}

client.on("open", () => {
  setStatus("online", "connected");
  client.request("rooms").then(renderRooms, showError);
  if (state.nickname) join(state.nickname, state.room).catch(showError); // rejoin
});
client.on("close", () => {
  setStatus("offline", "disconnected");
  setComposer(false);
  clearTypists();
});
client.on("reconnecting", (attempt, delay) => {
  setStatus("connecting", `reconnecting in ${Math.max(1, Math.round(delay / 1000))} s…`);
});
client.on("error", () => {});

// -- joining ----------------------------------------------------------------------

async function join(nickname, room) {
  const answer = await client.request("join", nickname, room);
  state.nickname = answer.nickname;
  state.room = answer.room;
  localStorage.setItem("wskit-chat-nick", answer.nickname);
  if (location.hash.slice(1) !== answer.room) history.replaceState(null, "", `#${answer.room}`);
  document.title = `#${answer.room} · wskit chat`;
  ui.where.textContent = `#${answer.room}`;
  ui.messages.replaceChildren();
  for (const message of answer.history) addMessage(message);
  if (!answer.history.length) addNotice({ text: `This is the start of #${answer.room}.` });
  renderUsers(answer.users);
  clearTypists();
  highlightRoom();
  setComposer(true);
  ui.text.focus();
  return answer;
}

ui.nick.value = localStorage.getItem("wskit-chat-nick") || "";
ui.room.value = decodeURIComponent(location.hash.slice(1)) || "lobby";
ui.welcome.showModal();

ui.joinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  ui.joinError.textContent = "";
  try {
    await join(ui.nick.value, ui.room.value);
    ui.welcome.close();
  } catch (error) {
    ui.joinError.textContent = error.message;
  }
});
ui.welcome.addEventListener("cancel", (event) => event.preventDefault());

async function switchRoom(room) {
  if (!state.nickname || room === state.room) return;
  stopTyping();
  try {
    await join(state.nickname, room);
    showError(null);
  } catch (error) {
    showError(error);
  }
}

ui.roomForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const room = ui.newRoom.value.trim();
  ui.newRoom.value = "";
  if (room) switchRoom(room.toLowerCase());
});

// -- talking ----------------------------------------------------------------------

ui.composer.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  stopTyping();
  try {
    await client.request("say", text);
    ui.text.value = "";
    showError(null);
  } catch (error) {
    showError(error);
  }
});

ui.text.addEventListener("input", () => {
  if (!state.room || !client.connected) return;
  if (!ui.text.value) {
    stopTyping();
    return;
  }
  if (!state.typingSent) {
    state.typingSent = true;
    client.emit("typing", true);
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE);
});

function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSent && client.connected) client.emit("typing", false);
  state.typingSent = false;
}

client.on("chat", (message) => {
  addMessage(message);
  forgetTypist(message.nick);
});
client.on("notice", addNotice);
client.on("users", (room, users) => {
  if (room === state.room) renderUsers(users);
});
client.on("rooms", renderRooms);
client.on("typing", (nick, active) => {
  if (active) {
    clearTimeout(typists.get(nick));
    typists.set(nick, setTimeout(() => forgetTypist(nick), TYPING_EXPIRE));
    renderTypists();
  } else {
    forgetTypist(nick);
  }
});

// -- rendering ---------------------------------------------------------------------

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// A stable colour per nickname.
function hue(nick) {
  let hash = 0;
  for (const char of nick) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return hash % 360;
}

function avatar(nick) {
  const node = element("span", "avatar", [...nick][0].toUpperCase());
  node.style.setProperty("--hue", hue(nick));
  return node;
}

function clock(ts) {
  return new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function scrolledDown() {
  const list = ui.messages;
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

function append(node) {
  const follow = scrolledDown();
  ui.messages.append(node);
  if (follow) ui.messages.scrollTop = ui.messages.scrollHeight;
}

function addMessage({ nick, text, ts }) {
  const item = element("li", nick === state.nickname ? "message mine" : "message");
  const previous = ui.messages.lastElementChild;
  const sameAuthor = previous && previous.dataset.nick === nick && ts - previous.dataset.ts < 120000;
  item.dataset.nick = nick;
  item.dataset.ts = ts;
  if (sameAuthor) item.classList.add("continued");
  item.append(avatar(nick));
  const body = element("div", "body");
  const head = element("div", "head");
  const who = element("span", "nick", nick);
  who.style.setProperty("--hue", hue(nick));
  head.append(who, element("time", "time", clock(ts)));
  body.append(head, element("div", "text", text));
  item.append(body);
  append(item);
}

function addNotice({ text }) {
  append(element("li", "notice", text));
}

function renderUsers(users) {
  ui.users.replaceChildren(
    ...users.map((nick) => {
      const item = element("li", nick === state.nickname ? "me" : "");
      item.append(avatar(nick), element("span", "name", nick));
      return item;
    }),
  );
  ui.userCount.textContent = users.length;
}

function renderRooms(rooms) {
  if (state.room && !rooms.some((room) => room.name === state.room)) {
    rooms = [{ name: state.room, users: 1 }, ...rooms];
  }
  ui.rooms.replaceChildren(
    ...rooms.map(({ name, users }) => {
      const item = element("li");
      const button = element("button", "room", `#${name}`);
      button.type = "button";
      button.dataset.room = name;
      button.append(element("span", "count", users));
      button.addEventListener("click", () => switchRoom(name));
      item.append(button);
      return item;
    }),
  );
  highlightRoom();
}

function highlightRoom() {
  for (const button of ui.rooms.querySelectorAll("button.room")) {
    button.classList.toggle("current", button.dataset.room === state.room);
  }
}

function forgetTypist(nick) {
  clearTimeout(typists.get(nick));
  if (typists.delete(nick)) renderTypists();
}

function clearTypists() {
  for (const timer of typists.values()) clearTimeout(timer);
  typists.clear();
  renderTypists();
}

function renderTypists() {
  const names = [...typists.keys()];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  ui.typing.textContent = text;
}

function setComposer(enabled) {
  ui.text.disabled = !enabled;
  ui.send.disabled = !enabled;
}

function showError(error) {
  ui.error.textContent = error ? error.message || String(error) : "";
}
