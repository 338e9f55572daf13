// The public REST API (/api/v1), its {success, data, message} envelope, and the signed-in session.
const KEY = "hivecast.session";

export function session() {
  try { return JSON.parse(localStorage.getItem(KEY) || "null"); } catch { return null; }
}
export function setSession(s) {
  if (s) localStorage.setItem(KEY, JSON.stringify(s)); else localStorage.removeItem(KEY);
}
export function token() { return session()?.access_token || null; }

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

export async function api(path, { method = "GET", body, headers = {} } = {}) {
  const h = { accept: "application/json", ...headers };
  const t = token();
  if (t) h.authorization = `Bearer ${t}`;
  let payload;
  if (body !== undefined) { h["content-type"] = "application/json"; payload = JSON.stringify(body); }
  const r = await fetch(`/api/v1${path}`, { method, headers: h, body: payload });
  if (r.status === 204) return null;
  let json = null;
  try { json = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) {
    if (r.status === 401) setSession(null);
    throw new ApiError(r.status, (json && (json.message || json.error?.message)) || `HTTP ${r.status}`);
  }
  return json ? json.data : null;
}

export async function login(username, password) {
  const pair = await api("/auth/login", { method: "POST", body: { username, password } });
  setSession({ ...pair, username });
  return pair;
}

// tus 1.0 core: PATCH the bytes at Upload-Offset in chunks; XHR gives upload progress events.
export function tusUpload(url, file, onProgress, chunk = 4 * 1024 * 1024) {
  return new Promise((resolve, reject) => {
    let offset = 0;
    const next = () => {
      if (offset >= file.size) { resolve(); return; }
      const end = Math.min(offset + chunk, file.size);
      const xhr = new XMLHttpRequest();
      xhr.open("PATCH", url);
      xhr.setRequestHeader("tus-resumable", "1.0.0");
      xhr.setRequestHeader("upload-offset", String(offset));
      xhr.setRequestHeader("content-type", "application/offset+octet-stream");
      const t = token();
      if (t) xhr.setRequestHeader("authorization", `Bearer ${t}`);
      xhr.upload.onprogress = (e) => onProgress(offset + e.loaded, file.size);
      xhr.onload = () => {
        if (xhr.status === 204) {
          offset = Number(xhr.getResponseHeader("upload-offset") || end);
          onProgress(offset, file.size);
          next();
        } else reject(new ApiError(xhr.status, `upload failed: HTTP ${xhr.status}`));
      };
      xhr.onerror = () => reject(new ApiError(0, "upload failed: network error"));
      xhr.send(file.slice(offset, end));
    };
    next();
  });
}

export function wsUrl(path) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const t = token();
  return `${proto}//${location.host}${path}${t ? `?token=${encodeURIComponent(t)}` : ""}`;
}
