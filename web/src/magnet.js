// Fallback when the API row carries no magnet yet: read the published .torrent and hash its info
// dictionary (BitTorrent v1 info-hash = SHA-1 of the bencoded `info` value, byte for byte).
function skip(b, i) {
  const c = b[i];
  if (c === 0x69) { while (b[i] !== 0x65) i++; return i + 1; } // i...e
  if (c === 0x6c || c === 0x64) { i++; while (b[i] !== 0x65) i = skip(b, i); return i + 1; } // l...e, d...e
  let n = 0; // <len>:<bytes>
  while (b[i] !== 0x3a) { if (b[i] < 0x30 || b[i] > 0x39) throw new Error("bad bencode"); n = n * 10 + (b[i] - 0x30); i++; }
  return i + 1 + n;
}

export async function magnetFromTorrent(url, name) {
  const r = await fetch(url);
  if (!r.ok) return null;
  const b = new Uint8Array(await r.arrayBuffer());
  if (b[0] !== 0x64) return null;
  let i = 1;
  while (i < b.length && b[i] !== 0x65) {
    const keyStart = i;
    i = skip(b, i);
    const key = new TextDecoder().decode(b.subarray(keyStart, i));
    const valueStart = i;
    i = skip(b, i);
    if (key === "4:info") {
      const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", b.subarray(valueStart, i)));
      const hex = Array.from(digest, (x) => x.toString(16).padStart(2, "0")).join("");
      return `magnet:?xt=urn:btih:${hex}&dn=${encodeURIComponent(name)}`;
    }
  }
  return null;
}
