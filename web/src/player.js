// hls.js playback with a quality menu (Auto = ABR), a live-latency indicator and a stats panel
// that plots bitrate, buffer level and throughput over time.
import Hls from "hls.js";
import { h } from "./dom.js";

// DASH: dash.js is loaded only when asked for (a separate chunk), and drives the same menu and panel.
async function startDash(video, src, quality, state) {
  const mod = await import("dashjs");
  const dashjs = mod.default || mod;
  const player = dashjs.MediaPlayer().create();
  state.dash = player;
  player.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: true } } } });
  player.on(dashjs.MediaPlayer.events.STREAM_INITIALIZED, () => {
    while (quality.options.length > 1) quality.remove(1);
    player.getBitrateInfoListFor("video").forEach((b, i) => {
      quality.append(h("option", { value: String(i) }, b.height ? `${b.height}p` : `${Math.round(b.bitrate / 1000)} kb/s`));
    });
  });
  player.initialize(video, src, true);
}

export function createPlayer(src, { live, dash = false }) {
  const video = h("video", { controls: true, muted: true, autoplay: true, playsinline: true, "aria-label": "Video player" });
  video.muted = true;
  const danmaku = h("div", { class: "danmaku", "aria-hidden": "true" });
  const box = h("div", { class: "player" }, video, danmaku);
  const quality = h("select", { id: "quality", "aria-label": "Quality" }, h("option", { value: "-1" }, "Auto"));
  const latency = h("span", { id: "latency", role: "status", "aria-live": "off" }, live ? "latency: –" : "on demand");
  const statsText = h("div", { id: "stats-text" }, "");
  const canvas = h("canvas", { width: 600, height: 60, role: "img", "aria-label": "Bitrate, buffer and throughput over time" });
  const stats = h("div", { class: "stats", id: "stats" }, statsText, canvas);
  const controls = h("div", { class: "controls" }, h("label", { for: "quality" }, "Quality"), quality, latency);
  const history = [];
  let hls = null;
  let timer = 0;
  const state = { dash: null };

  if (dash) {
    startDash(video, src, quality, state).catch((e) => { statsText.textContent = `DASH failed: ${e}`; });
  } else if (Hls.isSupported()) {
    // The packager writes LL-HLS parts with blocking reload: follow them on live streams.
    hls = new Hls({ lowLatencyMode: live, enableWorker: true });
    hls.on(Hls.Events.MANIFEST_PARSED, (_e, data) => {
      while (quality.options.length > 1) quality.remove(1);
      data.levels.forEach((lvl, i) => {
        const label = lvl.height ? `${lvl.height}p` : `${Math.round((lvl.bitrate || 0) / 1000)} kb/s`;
        quality.append(h("option", { value: String(i) }, label));
      });
      video.play().catch(() => {});
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR) hls.startLoad();
      else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
    });
    hls.loadSource(src);
    hls.attachMedia(video);
  } else {
    video.src = src; // Safari plays HLS natively
  }
  quality.addEventListener("change", () => {
    if (state.dash) {
      const v = Number(quality.value);
      state.dash.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: v < 0 } } } });
      if (v >= 0) state.dash.setQualityFor("video", v, true);
      return;
    }
    if (!hls) return;
    const v = Number(quality.value);
    hls.currentLevel = v; // -1 hands control back to ABR
  });

  const tick = () => {
    let buffer = 0;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime && video.currentTime <= video.buffered.end(i)) buffer = video.buffered.end(i) - video.currentTime;
    }
    const d = state.dash;
    const level = hls && hls.currentLevel >= 0 ? hls.levels[hls.currentLevel] : null;
    let bitrate = level ? level.bitrate : 0;
    let throughput = hls ? hls.bandwidthEstimate || 0 : 0;
    if (d) {
      try {
        bitrate = (d.getBitrateInfoListFor("video")[d.getQualityFor("video")]?.bitrate) || 0;
        throughput = (d.getAverageThroughput("video") || 0) * 1000;
      } catch { /* not started yet */ }
    }
    if (live && (hls || d)) {
      const lat = d ? d.getCurrentLiveLatency() : hls.latency;
      latency.textContent = Number.isFinite(lat) && lat > 0 ? `latency: ${lat.toFixed(1)} s` : "latency: –";
    }
    statsText.textContent = `bitrate ${(bitrate / 1000).toFixed(0)} kb/s · buffer ${buffer.toFixed(1)} s · throughput ${(throughput / 1e6).toFixed(2)} Mb/s` +
      (hls ? ` · level ${hls.currentLevel}${hls.autoLevelEnabled ? " (auto)" : ""}` : "") + (d ? " · DASH" : " · HLS");
    history.push({ bitrate, buffer, throughput });
    if (history.length > 120) history.shift();
    draw(canvas, history);
  };
  timer = setInterval(tick, 1000);
  setTimeout(tick, 0);

  return {
    box, video, danmaku, controls, stats, quality,
    get hls() { return hls; },
    get dash() { return state.dash; },
    destroy() { clearInterval(timer); if (hls) hls.destroy(); if (state.dash) state.dash.reset(); video.removeAttribute("src"); },
  };
}

function draw(canvas, history) {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const { width: w, height: hgt } = canvas;
  ctx.clearRect(0, 0, w, hgt);
  const series = [["bitrate", "#ffcc33"], ["buffer", "#4fc3f7"], ["throughput", "#81c784"]];
  for (const [key, color] of series) {
    const max = Math.max(1e-9, ...history.map((p) => p[key]));
    ctx.strokeStyle = color;
    ctx.beginPath();
    history.forEach((p, i) => {
      const x = (i / 119) * w;
      const y = hgt - 2 - (p[key] / max) * (hgt - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    });
    ctx.stroke();
  }
}
