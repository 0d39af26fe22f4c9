// The sandbox's web chat: pick a person, talk to the bot, move the clock.
// Talks to /api/* (people, activity, clock) and /_sandbox/* (the local Bot API
// server's control API: messages since a revision, a user's actions, files).
"use strict";

const ROLES = { inspector: "督查员", secretary: "书记", leader: "领导", member: "党员", admin: "管理员" };
const HINTS = {
  inspector: "登记问题：/new B01 | 台账缺失 | 5 · 验收：按「验收」或 /verify N · 逾期：/overdue",
  secretary: "我的待办：/my · 提交整改：/submit N，再发照片或文件，最后 /done",
  leader: "台账：/ledger · 逾期：/overdue · 三清单：/lists · 导出：/export",
  member: "我的事项：/my · 本支部三清单：/lists",
  admin: "台账：/ledger · 导出 Excel：/export",
};
const QUICK = {
  inspector: ["/my", "/ledger", "/overdue", "/spotcheck", "/help"],
  secretary: ["/my", "/overdue", "/lists", "/help"],
  leader: ["/ledger", "/overdue", "/lists", "/export", "/help"],
  member: ["/my", "/lists", "/help"],
  admin: ["/ledger", "/export", "/help"],
};
const FIRED = {
  sweep: "催办扫描", recur: "周期任务", assign_spot_checks: "随机抽查", assign_lookbacks: "回头看",
  daily: "日报", weekly: "周报", monthly: "月度讲评", quarterly: "季度通报",
};
const WEEKDAYS = ["周一", "周二", "周三", "周四", "周五", "周六", "周日"];
const POLL_SECONDS = 25;

const $ = (id) => document.getElementById(id);
const state = {
  people: [], person: null, chat: null, zone: "Asia/Shanghai",
  counts: {}, seen: {}, shown: new Map(), lastDay: null, replyTo: null, poll: null,
};

// -- plumbing ---------------------------------------------------------------------

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json();
  if (!body.ok) throw new Error(body.error || response.statusText);
  return body.result;
}

function post(path, data) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function toast(text, alert = false) {
  const box = $("toast");
  box.textContent = text;
  box.className = alert ? "toast alert" : "toast";
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, alert ? 6000 : 3000);
}

// -- people and chats -------------------------------------------------------------

function unread(chat) {
  return Math.max(0, (state.counts[chat.id] || 0) - (state.seen[chat.id] || 0));
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  for (const person of state.people) {
    const item = el("li", person === state.person ? "person active" : "person");
    item.dataset.code = person.code;
    item.append(el("span", `avatar ${person.role}`, person.name.slice(-2)));
    const who = el("span", "who");
    who.append(el("b", "", person.name), el("small", "", `${ROLES[person.role]} · ${person.org_name}`));
    item.append(who);
    const count = person.chats.reduce((sum, chat) => sum + unread(chat), 0);
    if (count) item.append(el("span", "badge", String(count)));
    item.onclick = () => choose(person, person.chats[0]);
    list.append(item);
  }
  renderTabs();
}

function renderTabs() {
  const tabs = $("chats");
  tabs.replaceChildren();
  if (!state.person) return;
  for (const chat of state.person.chats) {
    const tab = el("button", chat.id === state.chat.id ? "tab active" : "tab", chat.title);
    tab.type = "button";
    tab.dataset.chat = chat.id;
    if (chat.type === "private") tab.prepend(el("span", "dot"));
    if (unread(chat) && chat.id !== state.chat.id) tab.append(el("span", "badge", String(unread(chat))));
    tab.onclick = () => choose(state.person, chat);
    tabs.append(tab);
  }
}

function choose(person, chat) {
  state.person = person;
  state.chat = chat;
  state.shown = new Map();
  state.lastDay = null;
  setReply(null);
  $("messages").replaceChildren();
  $("hint").textContent = `以 ${person.name}（${ROLES[person.role]}，${person.org_name}）身份 · ${HINTS[person.role]}`;
  const quick = $("quick");
  quick.replaceChildren();
  for (const command of QUICK[person.role]) {
    const button = el("button", "", command);
    button.type = "button";
    button.onclick = () => sendText(command);
    quick.append(button);
  }
  renderPeople();
  follow(chat.id);
  $("text").focus();
}

// -- messages ---------------------------------------------------------------------

async function follow(chatId) {
  // Long-poll the chat's messages; a newer follow() (another chat) ends this one.
  const control = new AbortController();
  if (state.poll) state.poll.abort();
  state.poll = control;
  let since = 0;
  while (!control.signal.aborted) {
    try {
      const path = `/_sandbox/chats/${chatId}/messages?since=${since}&timeout=${POLL_SECONDS}`;
      const result = await api(path, { signal: control.signal });
      if (control.signal.aborted) return;
      result.messages.forEach(show);
      since = result.revision;
      state.seen[chatId] = state.counts[chatId] = [...state.shown.values()].filter((m) => m.from_bot).length;
      renderPeople();
    } catch (error) {
      if (control.signal.aborted) return;
      await sleep(1000);
    }
  }
}

function show(message) {
  // Add a new message at the end, or replace an edited one where it is.
  const list = $("messages");
  const old = list.querySelector(`[data-id="${message.message_id}"]`);
  if (message.deleted) {
    if (old) old.remove();
    state.shown.delete(message.message_id);
    return;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const node = renderMessage(message);
  state.shown.set(message.message_id, message);
  if (old) {
    node.classList.add("changed");
    old.replaceWith(node);
  } else {
    const day = dayOf(message.date);
    if (day !== state.lastDay) list.append(el("div", "day", day));
    state.lastDay = day;
    list.append(node);
  }
  if (atBottom || !old) list.scrollTop = list.scrollHeight;
}

function renderMessage(message) {
  const mine = !message.from_bot && message.from.id === state.person.user_id;
  const node = el("div", message.from_bot ? "msg bot" : mine ? "msg me" : "msg other");
  node.dataset.id = message.message_id;
  if (!message.from_bot && !mine) node.append(el("div", "sender", message.from.first_name));
  if (message.photo) {
    const largest = message.photo[message.photo.length - 1];
    const image = el("img", "photo");
    image.src = `/_sandbox/files/${largest.file_id}`;
    image.alt = message.caption || "photo";
    image.onclick = () => window.open(image.src, "_blank");
    node.append(image);
  }
  if (message.document) node.append(fileLink(message.document));
  if (message.voice) node.append(el("div", "media", `🎤 语音 ${message.voice.duration}″`));
  if (message.video) node.append(el("div", "media", `🎬 视频 ${message.video.duration}″`));
  if (message.location) node.append(el("div", "media", `📍 ${message.location.latitude}, ${message.location.longitude}`));
  const text = message.text ?? message.caption;
  if (text) node.append(formatted(text, message.entities || message.caption_entities || []));
  const meta = el("div", "meta", timeOf(message.date));
  if (message.edit_count) meta.prepend(el("span", "edited", "已编辑 "));
  node.append(meta);
  if (message.from_bot) {
    const reply = el("button", "reply-to", "↩");
    reply.type = "button";
    reply.title = "回复这条消息（附到该事项） · reply to attach to its item";
    reply.onclick = () => setReply(message);
    node.append(reply);
  }
  const rows = message.reply_markup?.inline_keyboard || [];
  if (rows.length) {
    const keyboard = el("div", "keyboard");
    for (const row of rows) {
      const line = el("div", "row");
      for (const button of row) {
        const key = el("button", "", button.text);
        key.type = "button";
        key.dataset.data = button.callback_data || "";
        if (button.url) key.onclick = () => openLink(button.url);
        else key.onclick = () => press(message, button.callback_data, key);
        line.append(key);
      }
      keyboard.append(line);
    }
    node.append(keyboard);
  }
  return node;
}

function fileLink(document) {
  const link = el("a", "file");
  link.href = `/_sandbox/files/${document.file_id}`;
  link.download = document.file_name || "file";
  link.append(el("span", "icon", document.file_name?.endsWith(".xlsx") ? "📊" : "📄"));
  const kilobytes = Math.max(1, Math.round(document.file_size / 1024));
  link.append(el("span", "", `${document.file_name || "file"} · ${kilobytes} KB`));
  return link;
}

function formatted(text, entities) {
  // Telegram's entities count UTF-16 code units, as JavaScript strings do.
  const TAGS = { bold: "b", italic: "i", underline: "u", strikethrough: "s", code: "code", pre: "pre" };
  const box = el("div", "text");
  let at = 0;
  for (const entity of [...entities].sort((a, b) => a.offset - b.offset)) {
    if (entity.offset < at) continue; // nested entities are shown flat
    box.append(text.slice(at, entity.offset));
    const part = text.slice(entity.offset, entity.offset + entity.length);
    let node;
    if (entity.type === "text_link" || entity.type === "url") {
      node = el("a", "", part);
      node.href = entity.url || part;
      node.target = "_blank";
    } else {
      node = el(TAGS[entity.type] || "span", "", part);
    }
    box.append(node);
    at = entity.offset + entity.length;
  }
  box.append(text.slice(at));
  return box;
}

function dayOf(seconds) {
  const date = new Date(seconds * 1000);
  const text = date.toLocaleDateString("zh-CN", { timeZone: state.zone, month: "long", day: "numeric" });
  const weekday = date.toLocaleDateString("zh-CN", { timeZone: state.zone, weekday: "short" });
  return `${text} ${weekday}`;
}

function timeOf(seconds) {
  return new Date(seconds * 1000).toLocaleTimeString("zh-CN", { timeZone: state.zone, hour: "2-digit", minute: "2-digit" });
}

// -- what the user does -----------------------------------------------------------

function setReply(message) {
  state.replyTo = message;
  $("replying").hidden = !message;
  $("replying-text").textContent = message ? (message.text || message.caption || "").split("\n")[0] : "";
}

async function sendText(text) {
  if (!text.trim()) return;
  const action = { type: "text", user_id: state.person.user_id, text };
  if (state.replyTo) action.reply_to = state.replyTo.message_id;
  setReply(null);
  try {
    await post(`/_sandbox/chats/${state.chat.id}/actions`, action);
  } catch (error) {
    toast(`发送失败：${error.message}`, true);
  }
}

async function sendFile(file) {
  const form = new FormData();
  const isPhoto = /^image\/(png|jpeg|gif|webp)$/.test(file.type);
  form.append("type", isPhoto ? "photo" : "document");
  form.append("user_id", state.person.user_id);
  const caption = $("text").value.trim();
  if (caption) form.append("caption", caption);
  form.append("file", file, file.name);
  $("text").value = "";
  try {
    await api(`/_sandbox/chats/${state.chat.id}/actions`, { method: "POST", body: form });
  } catch (error) {
    toast(`上传失败：${error.message}`, true);
  }
}

function openLink(url) {
  // A deep link to the bot ("continue in private") opens the private chat with /start, as the app does.
  const deep = /^https:\/\/t\.me\/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]+)$/.exec(url);
  if (!deep) return window.open(url, "_blank");
  choose(state.person, state.person.chats[0]);
  sendText(`/start ${deep[1]}`);
}

async function press(message, data, key) {
  key.disabled = true;
  try {
    const action = { type: "press", user_id: state.person.user_id, message_id: message.message_id, data };
    const { callback_query_id: id } = await post(`/_sandbox/chats/${state.chat.id}/actions`, action);
    const answer = await api(`/_sandbox/callback_queries/${id}?timeout=10`);
    if (answer.text) toast(answer.text, answer.show_alert);
  } catch (error) {
    toast(`按钮失效：${error.message}`, true);
  } finally {
    key.disabled = false;
  }
}

// -- the clock --------------------------------------------------------------------

function showClock(clock) {
  state.zone = clock.zone;
  const rest = clock.workday ? "" : "（休息日）";
  $("clock-now").textContent = `${clock.date} ${WEEKDAYS[clock.weekday]} ${clock.time}${rest}`;
  $("clock-date").min = clock.date;
}

async function moveClock(move) {
  const buttons = document.querySelectorAll("#clock button");
  buttons.forEach((button) => { button.disabled = true; });
  $("clock-note").textContent = "时间推进中，补发期间的催办和通报…";
  try {
    const { clock, moved } = await post("/api/clock", move);
    showClock(clock);
    const names = moved.fired.map((fired) => FIRED[fired.args[0]] || FIRED[fired.actor] || fired.name);
    const counts = {};
    names.forEach((name) => { counts[name] = (counts[name] || 0) + 1; });
    const summary = Object.entries(counts).map(([name, n]) => (n > 1 ? `${name}×${n}` : name)).join("、");
    $("clock-note").textContent = summary ? `已运行：${summary}` : "期间无定时任务";
  } catch (error) {
    $("clock-note").textContent = "";
    toast(error.message, true);
  } finally {
    buttons.forEach((button) => { button.disabled = false; });
  }
}

async function watchActivity() {
  // The bot's message count per chat, for the unread badges of everyone else.
  let since = 0;
  for (;;) {
    try {
      const result = await api(`/api/activity?since=${since}&timeout=${POLL_SECONDS}`);
      since = result.revision;
      for (const [chat, count] of Object.entries(result.chats)) {
        if (!state.chat || Number(chat) !== state.chat.id) state.counts[chat] = count;
      }
      renderPeople();
    } catch (error) {
      await sleep(2000);
    }
  }
}

// -- start ------------------------------------------------------------------------

async function start() {
  showClock(await api("/api/clock"));
  state.people = (await api("/api/people")).people;
  renderPeople();
  choose(state.people[0], state.people[0].chats[0]);
  watchActivity();
  setInterval(async () => showClock(await api("/api/clock")), 30000);

  $("composer").onsubmit = (event) => {
    event.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    sendText(text);
  };
  $("file").onchange = (event) => {
    if (event.target.files[0]) sendFile(event.target.files[0]);
    event.target.value = "";
  };
  $("replying-cancel").onclick = () => setReply(null);
  document.querySelectorAll("#clock button[data-step]").forEach((button) => {
    button.onclick = () => moveClock({ by: button.dataset.step });
  });
  $("clock-go").onclick = () => {
    if ($("clock-date").value) moveClock({ to: $("clock-date").value });
  };
}

start();
