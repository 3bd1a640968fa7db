// ThumbHash decoder, written from the published format (Evan Wallace, evanw.github.io/thumbhash).
//
// A hash is a 24-bit and a 16-bit little-endian header (DC terms and scales of the L, P, Q
// channels, alpha and orientation flags), an optional alpha byte, then 4-bit AC terms of a
// cosine transform: L on an lx*ly triangle, P and Q on 3*3, alpha on 5*5. Decoding sums
// the cosines at each pixel of a small image and converts LPQ back to RGB.

/** The bytes of a standard base64 ThumbHash, as the API returns it. */
export function thumbHashFromBase64(text) {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/** Whether the hash encodes transparency (the top bit of its third byte). */
export function thumbHashHasAlpha(hash) {
  return (hash[2] & 0x80) !== 0;
}

/** The aspect ratio the hash encodes (rough: it comes from the number of L terms). */
export function thumbHashAspectRatio(hash) {
  const hasAlpha = thumbHashHasAlpha(hash);
  const isLandscape = hash[4] & 0x80;
  const lx = isLandscape ? (hasAlpha ? 5 : 7) : hash[3] & 7;
  const ly = isLandscape ? hash[3] & 7 : hasAlpha ? 5 : 7;
  return lx / ly;
}

/** Decode a hash to `{w, h, rgba}`: at most 32 px on the longer side, RGBA bytes. */
export function thumbHashToRGBA(hash) {
  if (hash.length < 5) throw new Error("ThumbHash too short");
  const header24 = hash[0] | (hash[1] << 8) | (hash[2] << 16);
  const header16 = hash[3] | (hash[4] << 8);
  const lDc = (header24 & 63) / 63;
  const pDc = ((header24 >> 6) & 63) / 31.5 - 1;
  const qDc = ((header24 >> 12) & 63) / 31.5 - 1;
  const lScale = ((header24 >> 18) & 31) / 31;
  const hasAlpha = header24 >> 23 !== 0;
  const pScale = ((header16 >> 3) & 63) / 63;
  const qScale = ((header16 >> 9) & 63) / 63;
  const isLandscape = header16 >> 15 !== 0;
  const lx = Math.max(3, isLandscape ? (hasAlpha ? 5 : 7) : header16 & 7);
  const ly = Math.max(3, isLandscape ? header16 & 7 : hasAlpha ? 5 : 7);
  const aDc = hasAlpha ? (hash[5] & 15) / 15 : 1;
  const aScale = hasAlpha ? (hash[5] >> 4) / 15 : 0;

  // AC terms, two per byte, low nibble first. The encoder quantises chroma coarsely, so
  // the format boosts P and Q by 1.25 when decoding.
  const acStart = hasAlpha ? 6 : 5;
  let acIndex = 0;
  const channel = (nx, ny, scale) => {
    const ac = [];
    for (let cy = 0; cy < ny; cy++) {
      for (let cx = cy ? 0 : 1; cx * ny < nx * (ny - cy); cx++) {
        const byte = hash[acStart + (acIndex >> 1)] ?? 0x88; // a short hash reads as zero terms
        const nibble = (byte >> ((acIndex & 1) << 2)) & 15;
        acIndex++;
        ac.push((nibble / 7.5 - 1) * scale);
      }
    }
    return ac;
  };
  const lAc = channel(lx, ly, lScale);
  const pAc = channel(3, 3, pScale * 1.25);
  const qAc = channel(3, 3, qScale * 1.25);
  const aAc = hasAlpha ? channel(5, 5, aScale) : [];

  const ratio = thumbHashAspectRatio(hash);
  const w = Math.round(ratio > 1 ? 32 : 32 * ratio);
  const h = Math.round(ratio > 1 ? 32 / ratio : 32);
  const rgba = new Uint8ClampedArray(w * h * 4);
  const fx = [];
  const fy = [];
  const nx = Math.max(lx, hasAlpha ? 5 : 3);
  const ny = Math.max(ly, hasAlpha ? 5 : 3);
  for (let y = 0, i = 0; y < h; y++) {
    for (let cy = 0; cy < ny; cy++) fy[cy] = Math.cos((Math.PI / h) * (y + 0.5) * cy);
    for (let x = 0; x < w; x++, i += 4) {
      for (let cx = 0; cx < nx; cx++) fx[cx] = Math.cos((Math.PI / w) * (x + 0.5) * cx);
      let l = lDc;
      let p = pDc;
      let q = qDc;
      let a = aDc;
      for (let cy = 0, j = 0; cy < ly; cy++) {
        const fy2 = fy[cy] * 2;
        for (let cx = cy ? 0 : 1; cx * ly < lx * (ly - cy); cx++, j++) l += lAc[j] * fx[cx] * fy2;
      }
      for (let cy = 0, j = 0; cy < 3; cy++) {
        const fy2 = fy[cy] * 2;
        for (let cx = cy ? 0 : 1; cx < 3 - cy; cx++, j++) {
          const f = fx[cx] * fy2;
          p += pAc[j] * f;
          q += qAc[j] * f;
        }
      }
      if (hasAlpha) {
        for (let cy = 0, j = 0; cy < 5; cy++) {
          const fy2 = fy[cy] * 2;
          for (let cx = cy ? 0 : 1; cx < 5 - cy; cx++, j++) a += aAc[j] * fx[cx] * fy2;
        }
      }
      // LPQ to RGB; Uint8ClampedArray rounds and clamps to 0..255.
      const b = l - (2 / 3) * p;
      const r = (3 * l - b + q) / 2;
      const g = r - q;
      rgba[i] = 255 * r;
      rgba[i + 1] = 255 * g;
      rgba[i + 2] = 255 * b;
      rgba[i + 3] = 255 * a;
    }
  }
  return { w, h, rgba };
}

/** A PNG data: URL of the decoded hash, ready for a CSS background or an <img>. */
export function thumbHashToDataURL(hash) {
  const { w, h, rgba } = thumbHashToRGBA(hash);
  const canvas = document.createElement("canvas");
  canvas.width = w;
  canvas.height = h;
  canvas.getContext("2d").putImageData(new ImageData(rgba, w, h), 0, 0);
  return canvas.toDataURL("image/png");
}
