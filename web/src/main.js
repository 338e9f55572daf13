// Hash-routed single page: #/ channels, #/watch/NAME live, #/vod/ID on demand, #/console.
import "./style.css";
import { h, clear } from "./dom.js";
import { api, login, session, setSession, tusUpload, wsUrl, ApiError } from "./api.js";
import { createPlayer } from "./player.js";
import { createChat } from "./chat.js";
import { magnetFromTorrent } from "./magnet.js";

const main = document.getElementById("main");
const packaged = new Set(); // video ids seen in vod.packaged events
const who = document.getElementById("who");
let cleanup = [];

function showWho() {
  clear(who);
  const s = session();
  if (s) who.append(`signed in as ${s.username} `, h("button", { type: "button", id: "sign-out", onclick: () => { setSession(null); route(); } }, "Sign out"));
}

function errorText(e) { return e instanceof ApiError ? e.message : String(e); }

async function channels() {
  document.title = "Channels · Hivecast";
  const list = h("ul", { class: "cards", id: "channels" });
  main.append(h("h1", {}, "Channels"), list);
  const seen = new Set();
  const card = (name, title, state) => {
    if (seen.has(name)) return;
    seen.add(name);
    list.append(h("li", {}, h("a", { href: `#/watch/${encodeURIComponent(name)}` }, title || name),
      state === "live" ? h("span", { class: "badge" }, "LIVE") : null, h("div", { class: "muted" }, name)));
  };
  try {
    // Without credentials the API lists the streams live now (public fields); signed in, the
    // account's own streams (all of them, for an admin) come too, live or not.
    const r = await fetch("/api/v1/streams?size=100&sort=name", { headers: { accept: "application/json" }, cache: "no-store" });
    if (r.ok) for (const s of (await r.json()).data) card(s.name, s.title, s.state);
    if (session()) for (const s of await api("/streams?size=100")) card(s.name, s.title, s.state);
  } catch (e) { list.after(h("p", { class: "error" }, errorText(e))); }
  // The demo channel (`hivecast serve --demo`) has no database row: probe its playlist.
  try {
    const r = await fetch("/live/demo/index.m3u8", { method: "GET", cache: "no-store" });
    if (r.ok) card("demo", "Demo channel", "live");
  } catch { /* no demo */ }
  if (!list.children.length) list.append(h("li", {}, "No live channels."));
}

function watch(src, room, title, live, dash = false, other = null) {
  document.title = `${title} · Hivecast`;
  const player = createPlayer(src, { live, dash });
  const chat = room ? createChat(room, player) : null;
  cleanup.push(() => player.destroy(), () => chat?.destroy());
  if (other) player.controls.append(h("a", { href: other, id: "format-switch" }, dash ? "Play with HLS" : "Play with DASH"));
  main.append(h("h1", { id: "title" }, title),
    h("div", { class: "watch" }, h("div", {}, player.box, player.controls, player.stats), chat ? chat.panel : h("div")));
  window.__player = player; // for tests and debugging
}

async function vod(id, dash) {
  try {
    const v = await api(`/videos/${encodeURIComponent(id)}`);
    const src = dash ? (v.playback_urls?.dash || `/vod/${id}/manifest.mpd`) : (v.playback_urls?.hls || `/vod/${id}/index.m3u8`);
    watch(src, null, v.title, false, dash, `#/vod/${encodeURIComponent(id)}${dash ? "" : "/dash"}`);
    const links = h("p", {});
    if (v.torrent_url) links.append(h("a", { href: v.torrent_url }, "torrent"), " ");
    if (v.magnet) links.append(h("a", { href: v.magnet }, "magnet link"));
    main.append(links);
  } catch (e) { main.append(h("p", { class: "error" }, errorText(e))); }
}

function signIn() {
  const user = h("input", { id: "username", name: "username", autocomplete: "username", required: true });
  const pass = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const msg = h("p", { class: "error", role: "alert" });
  const form = h("form", { id: "sign-in", "aria-label": "Sign in" },
    h("label", { for: "username" }, "Username"), user, h("label", { for: "password" }, "Password"), pass,
    h("p", {}, h("button", { type: "submit" }, "Sign in")), msg);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await login(user.value, pass.value); route(); } catch (err) { msg.textContent = errorText(err); }
  });
  main.append(h("h1", {}, "Sign in"), form);
  user.focus();
}

function lazyMagnet(torrent, title, tries = 5) {
  // The torrent is made just after `vod.packaged` (torrent.* events are not relayed to browsers): retry a little.
  const cell = h("span", {});
  const attempt = (left) => magnetFromTorrent(torrent, title).then((m) => {
    if (m) cell.append(h("a", { href: m, class: "magnet" }, "magnet"));
    else if (left > 0) setTimeout(() => attempt(left - 1), 2000);
  }).catch(() => {});
  attempt(tries - 1);
  return cell;
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))));
}

async function consolePage() {
  document.title = "Console · Hivecast";
  if (!session()) { signIn(); return; }
  main.append(h("h1", {}, "Console"));
  const role = (await api("/auth/me").catch(() => null))?.role;

  // Streams: create one, see its key (shown once) and ingest URLs.
  const streams = h("section", { class: "box", "aria-labelledby": "h-streams" }, h("h2", { id: "h-streams" }, "Streams"));
  const sName = h("input", { id: "stream-name", required: true, pattern: "[A-Za-z0-9._~\\-]{1,64}" });
  const sTitle = h("input", { id: "stream-title" });
  const sOut = h("div", { id: "stream-created", role: "status" });
  const sList = h("div", { id: "stream-list" });
  const sForm = h("form", { class: "inline", "aria-label": "Create stream" },
    h("div", {}, h("label", { for: "stream-name" }, "Stream name"), sName), h("div", {}, h("label", { for: "stream-title" }, "Stream title"), sTitle),
    h("button", { type: "submit" }, "Create stream"));
  const loadStreams = async () => {
    const rows = await api("/streams?size=100").catch(() => []);
    clear(sList).append(table(["Name", "Title", "State", "Ingest"], rows.map((s) => [
      h("a", { href: `#/watch/${encodeURIComponent(s.name)}` }, s.name), s.title || "", s.state, h("code", {}, s.ingest_urls?.rtsp || "")])));
  };
  sForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(sOut);
    try {
      const s = await api("/streams", { method: "POST", body: { name: sName.value, title: sTitle.value || sName.value } });
      // The API names the RTMP URL when the node has RTMP ingest on (null otherwise).
      const rtmpUrl = s.ingest_urls.rtmp;
      const rtmp = rtmpUrl ? rtmpUrl.slice(0, rtmpUrl.length - s.name.length - 1) : null;
      sOut.append(h("p", {}, "Stream created. The key is shown only now:"),
        h("dl", {}, h("dt", {}, "Stream key"), h("dd", {}, h("code", { id: "stream-key" }, s.stream_key)),
          h("dt", {}, "RTSP ingest"), h("dd", {}, h("code", { id: "ingest-rtsp" }, `${s.ingest_urls.rtsp}?key=${s.stream_key}`)),
          ...(rtmp ? [h("dt", {}, "RTMP ingest"), h("dd", {}, h("code", { id: "ingest-rtmp" }, `${rtmpUrl}?key=${s.stream_key}`)),
            h("dd", { class: "muted" }, `OBS: server ${rtmp}, stream key ${s.name}?key=${s.stream_key}`)] : [])));
      await loadStreams();
    } catch (err) { sOut.append(h("p", { class: "error" }, errorText(err))); }
  });
  streams.append(sForm, sOut, sList);

  // Upload with tus and a progress bar; packaging progress comes live over /ws/events.
  const upload = h("section", { class: "box", "aria-labelledby": "h-upload" }, h("h2", { id: "h-upload" }, "Upload a video"));
  const uFile = h("input", { id: "upload-file", type: "file", accept: "video/*", required: true });
  const uTitle = h("input", { id: "upload-title", required: true });
  const bar = h("progress", { id: "upload-progress", max: "100", value: "0", "aria-label": "Upload progress" });
  const uStatus = h("p", { id: "upload-status", role: "status" });
  const uForm = h("form", { "aria-label": "Upload a video" }, h("label", { for: "upload-title" }, "Video title"), uTitle,
    h("label", { for: "upload-file" }, "File"), uFile, h("p", {}, h("button", { type: "submit" }, "Upload")), bar, uStatus);
  upload.append(uForm);
  const vList = h("div", { id: "video-list" });
  const loadVideos = async () => {
    const rows = await api("/videos?size=100").catch(() => []);
    clear(vList).append(table(["Title", "State", "Play", "Torrent", "Magnet"], rows.map((v) => {
      // A `vod.packaged` event seen on /ws/events makes a video playable even before its row says "ready".
      const done = v.playback_urls || packaged.has(v.id);
      const torrent = v.torrent_url || (packaged.has(v.id) ? `/vod/${v.id}/${v.id}.torrent` : null);
      return [
      v.title, h("span", { class: "video-state" }, packaged.has(v.id) && v.state === "packaging" ? "packaged" : v.state),
      done ? h("a", { href: `#/vod/${v.id}` }, "play") : "",
      torrent ? h("a", { href: torrent }, "torrent") : "",
      v.magnet ? h("a", { href: v.magnet, class: "magnet" }, "magnet") : torrent ? lazyMagnet(torrent, v.title) : ""];
    })));
  };
  uForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const file = uFile.files?.[0];
    if (!file) return;
    try {
      const safe = file.name.replace(/[^A-Za-z0-9 _.()-]/g, "_").replace(/^[^A-Za-z0-9]+/, "") || "upload";
      const v = await api("/videos", { method: "POST", body: { title: uTitle.value, size: file.size, filename: safe.slice(0, 200) } });
      uStatus.textContent = "uploading…";
      await tusUpload(v.upload_url, file, (done, total) => { bar.value = Math.round((done / total) * 100); });
      uStatus.textContent = "uploaded; packaging…";
      await loadVideos();
    } catch (err) { uStatus.textContent = errorText(err); }
  });
  const videos = h("section", { class: "box", "aria-labelledby": "h-videos" }, h("h2", { id: "h-videos" }, "Videos"), vList);

  const edges = h("section", { class: "box", "aria-labelledby": "h-edges" }, h("h2", { id: "h-edges" }, "Edges"));
  const eList = h("div", { id: "edge-list" });
  edges.append(eList);
  const loadEdges = async () => {
    try {
      const rows = await api("/edges?size=100");
      clear(eList).append(rows.length ? table(["Edge", "Region", "Health", "Connections", "Bandwidth"], rows.map((x) => [
        x.url || x.id, x.region || "", x.draining ? "draining" : x.healthy ? "healthy" : "unhealthy",
        String(x.load?.connections ?? ""), x.load?.bandwidth_bps != null ? `${(x.load.bandwidth_bps / 1e6).toFixed(1)} Mb/s` : ""])) : "No edges.");
    } catch (err) { clear(eList).append(h("p", { class: "muted" }, errorText(err))); }
  };

  // Purge / prefetch through POST /purges (admin).
  const purge = h("section", { class: "box", "aria-labelledby": "h-purge" }, h("h2", { id: "h-purge" }, "Purge and prefetch"));
  const pKind = h("select", { id: "purge-kind" }, ["url", "prefix", "tag", "prefetch"].map((k) => h("option", { value: k }, k)));
  const pValue = h("input", { id: "purge-value", required: true });
  const pOut = h("p", { role: "status", id: "purge-status" });
  const pForm = h("form", { class: "inline", "aria-label": "Purge" }, h("div", {}, h("label", { for: "purge-kind" }, "Kind"), pKind),
    h("div", {}, h("label", { for: "purge-value" }, "Value"), pValue), h("button", { type: "submit" }, "Send"), pOut);
  pForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    try { await api("/purges", { method: "POST", body: { kind: pKind.value, values: [pValue.value] } }); pOut.textContent = pKind.value === "prefetch" ? "prefetch queued" : "purge queued"; } catch (err) { pOut.textContent = errorText(err); }
  });
  purge.append(pForm);

  const keys = h("section", { class: "box", "aria-labelledby": "h-keys" }, h("h2", { id: "h-keys" }, "API keys"));
  const kName = h("input", { id: "key-name", required: true });
  const kOut = h("div", { role: "status" });
  const kList = h("div", { id: "key-list" });
  const loadKeys = async () => {
    const rows = await api("/api-keys?size=100").catch(() => []);
    clear(kList).append(table(["Name", "Scopes", "Revoked"], rows.map((k) => [k.name, (k.scopes || []).join(", "), k.revoked ? "yes" : "no"])));
  };
  const kForm = h("form", { class: "inline", "aria-label": "Create API key" }, h("div", {}, h("label", { for: "key-name" }, "Key name"), kName),
    h("button", { type: "submit" }, "Create key"));
  kForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(kOut);
    try {
      const k = await api("/api-keys", { method: "POST", body: { name: kName.value } });
      kOut.append(h("p", {}, "Copy the key now: ", h("code", { id: "api-key-secret" }, k.key || "")));
      await loadKeys();
    } catch (err) { kOut.append(h("p", { class: "error" }, errorText(err))); }
  });
  keys.append(kForm, kOut, kList);

  main.append(streams, upload, videos, edges, ...(role === "admin" ? [purge] : []), keys);
  await Promise.all([loadStreams(), loadVideos(), loadEdges(), loadKeys()]);

  if (role === "admin" || role === "streamer") {
    const ws = new WebSocket(wsUrl("/ws/events"));
    ws.onmessage = (ev) => {
      let m; try { m = JSON.parse(ev.data); } catch { return; }
      const topic = m.topic || "";
      if (topic === "vod.progress") uStatus.textContent = `packaging ${m.data.stage || ""} ${Math.round(m.data.percent || 0)}%`;
      // Give the BitTorrent service a moment to write the .torrent it makes on the same event.
      if (topic === "vod.packaged") { packaged.add(m.data.id); uStatus.textContent = "packaged"; setTimeout(loadVideos, 1500); }
      if (topic === "vod.failed") uStatus.textContent = `packaging failed: ${m.data.error || ""}`;
      if (topic === "edge.health") loadEdges();
    };
    cleanup.push(() => ws.close());
  }
}

async function route() {
  for (const f of cleanup) try { f(); } catch { /* already gone */ }
  cleanup = [];
  clear(main);
  showWho();
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  const dash = parts[2] === "dash";
  if (parts[0] === "watch" && parts[1]) {
    const n = encodeURIComponent(parts[1]);
    watch(`/live/${n}/${dash ? "manifest.mpd" : "index.m3u8"}`, parts[1], parts[1], true, dash, `#/watch/${n}${dash ? "" : "/dash"}`);
  } else if (parts[0] === "vod" && parts[1]) await vod(parts[1], dash);
  else if (parts[0] === "console") await consolePage();
  else await channels();
}

window.addEventListener("hashchange", route);
route();
