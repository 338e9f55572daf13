// Chat beside the player and danmaku over it, on /ws/live/<stream> (docs/realtime.md).
import { h } from "./dom.js";
import { wsUrl, token } from "./api.js";

export function createChat(room, player) {
  const list = h("ol", { id: "chat-messages", "aria-live": "polite", "aria-label": "Chat messages" });
  const viewers = h("span", { id: "viewers", role: "status" }, "viewers: –");
  const input = h("input", { type: "text", id: "chat-input", maxlength: "500", autocomplete: "off", "aria-label": "Chat message" });
  const asDanmaku = h("input", { type: "checkbox", id: "chat-danmaku" });
  const send = h("button", { type: "submit" }, "Send");
  const status = h("p", { class: "muted", id: "chat-status" }, token() ? "" : "Sign in to chat.");
  const form = h("form", { "aria-label": "Send a chat message" }, input,
    h("label", { for: "chat-danmaku", style: "margin:0" }, asDanmaku, " as danmaku"), send);
  const panel = h("aside", { class: "chat", "aria-label": "Chat" }, h("div", { style: "padding:8px" }, viewers), list, status, form);
  let ws = null;
  let closed = false;
  let lane = 0;

  const addChat = (m) => {
    const li = h("li", { "data-id": m.id || "" }, h("span", { class: "user" }, m.user?.name ?? "anonymous"),
      h("span", { class: "text" }, m.text));
    if (m.type === "danmaku") li.append(h("span", { class: "muted" }, " (danmaku)"));
    list.append(li);
    while (list.children.length > 200) list.firstChild.remove();
    list.scrollTop = list.scrollHeight;
  };
  const addDanmaku = (m) => {
    const color = /^#[0-9a-fA-F]{6}$/.test(m.color || "") ? m.color : "#ffffff";
    const span = h("span", { class: "danmaku-item" }, m.text);
    span.style.color = color;
    span.style.top = `${(lane++ % 8) * 11 + 2}%`;
    span.addEventListener("animationend", () => span.remove());
    player.danmaku.append(span);
  };
  const connect = () => {
    ws = new WebSocket(wsUrl(`/ws/live/${encodeURIComponent(room)}`));
    ws.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === "welcome" || m.type === "presence") viewers.textContent = `viewers: ${m.viewers}`;
      if (m.type === "welcome") status.textContent = m.can_send ? "" : "Sign in to chat.";
      if (m.type === "history") for (const x of m.messages || []) addChat(x);
      if (m.type === "chat") addChat(m);
      if (m.type === "danmaku") { addChat(m); addDanmaku(m); }
      if (m.type === "deleted") list.querySelector(`li[data-id="${CSS.escape(m.id)}"]`)?.remove();
      if (m.type === "error") status.textContent = m.message || m.code;
    };
    ws.onclose = () => { if (!closed) setTimeout(connect, 2000); };
  };
  connect();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value.trim();
    if (!text || !ws || ws.readyState !== WebSocket.OPEN) return;
    const msg = asDanmaku.checked
      ? { type: "danmaku", text, media_time: Math.max(0, player.video.currentTime || 0), color: "#ffffff", mode: "scroll" }
      : { type: "chat", text };
    ws.send(JSON.stringify(msg));
    input.value = "";
  });
  return { panel, destroy() { closed = true; ws?.close(); } };
}
