// The upload page: a token, uploads with progress, the kind's variants over their
// placeholder, refusals as the API words them, and the caller's media with delete.
// It uses only the public API, as any client would.

import { thumbHashFromBase64, thumbHashHasAlpha, thumbHashToDataURL } from "./thumbhash.js";

const TOKEN_KEY = "mediasvc.token";
const PARALLEL_UPLOADS = 3; // more would only wait in the server's queue
const PAGE_SIZE = 24;
const PREVIEW_HEIGHT = 160; // variants are shown at most this tall; captions give real sizes
const HASH_MAX_BYTES = 64 * 1024 * 1024; // a session's file is hashed (read whole) up to this
const SEND_TIMEOUT_MS = 5 * 60 * 1000;
const TYPE_NAMES = {
  "image/jpeg": "JPEG",
  "image/png": "PNG",
  "image/webp": "WebP",
  "image/gif": "GIF",
  "image/avif": "AVIF",
  "image/heic": "HEIC",
  "image/heif": "HEIF",
  "image/svg+xml": "an SVG",
  "text/html": "an HTML page",
  "text/xml": "an XML document",
  "application/pdf": "a PDF",
  "image/tiff": "a TIFF",
  "image/bmp": "a BMP",
  "image/x-ms-bmp": "a BMP",
  "application/zip": "a ZIP archive",
  "text/plain": "plain text",
};

const $ = (selector) => document.querySelector(selector);
const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
};

const state = { token: "", limits: null, cursor: null, queue: [], running: 0 };

// ---- formatting ----------------------------------------------------------------------

function formatBytes(n) {
  const one = (value, unit) => `${Number(value.toFixed(1))} ${unit}`; // 25 MiB, not 25.0 MiB
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return one(n / 1024, "KiB");
  return one(n / 1024 / 1024, "MiB");
}

function typeName(mime) {
  return TYPE_NAMES[mime] ?? mime;
}

function listWords(words) {
  return words.length < 2 ? words.join("") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

function announce(text) {
  // Clear first so the same message twice is announced twice.
  const status = $("#status");
  status.textContent = "";
  requestAnimationFrame(() => (status.textContent = text));
}

// ---- problems (RFC 9457) -------------------------------------------------------------

function problemFrom(status, text, statusText) {
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: a proxy's error page, or nothing at all
  }
  if (body && typeof body === "object" && typeof body.title === "string") {
    return { status, ...body };
  }
  return {
    status,
    code: "http_error",
    title: `HTTP ${status || "error"}`,
    detail: statusText || "The server gave an answer this page does not understand.",
  };
}

// The sentence shown under the title: the API's detail, said plainly where we can.
function problemSentence(problem) {
  if (problem.code === "unsupported_media_type" && problem.actual && problem.accepted) {
    const accepted = listWords(problem.accepted.map(typeName));
    return `This file is ${typeName(problem.actual)}; only ${accepted} are accepted.`;
  }
  if (problem.status === 401) {
    return `${problem.detail} Check the token above; it may have expired.`;
  }
  return problem.detail ?? "";
}

function problemBox(problem) {
  const code = [problem.status, problem.code].filter(Boolean).join(" · ");
  return el(
    "div",
    { className: "problem" },
    el("strong", { className: "problem-title", textContent: problem.title }),
    el("p", { className: "problem-detail", textContent: problemSentence(problem) }),
    el("p", { className: "problem-code", textContent: code }),
  );
}

// ---- token ---------------------------------------------------------------------------

function tokenClaims(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload));
  } catch {
    return null;
  }
}

function showTokenState(text, bad = false) {
  const node = $("#token-state");
  node.hidden = !text;
  node.textContent = text;
  node.classList.toggle("bad", bad);
}

async function useToken(token, fromDevStack = false) {
  state.token = token.trim();
  sessionStorage.setItem(TOKEN_KEY, state.token);
  // Shown for orientation only: the server verifies the token, the page cannot.
  const claims = tokenClaims(state.token);
  if (!claims || typeof claims.sub !== "string") {
    showTokenState("This does not look like a JWT; the server will decide.", true);
  } else {
    const until = claims.exp ? new Date(claims.exp * 1000).toLocaleString() : "no expiry";
    const spaces = Array.isArray(claims.spaces) ? claims.spaces : [];
    const listing = spaces.length ? ` in ${spaces.length === 1 ? spaces[0] : `${spaces.length} spaces`}` : "";
    const who = `${claims.sub}${claims.role === "admin" ? " (admin)" : ""}${listing}`;
    const source = fromDevStack ? "the dev token from make run, for" : "a token for";
    showTokenState(`Using ${source} ${who}, valid until ${until}.`);
  }
  await Promise.all([loadLimits(), loadLibrary(true)]);
}

function authHeaders() {
  return { Authorization: `Bearer ${state.token}` };
}

// ---- limits --------------------------------------------------------------------------

async function loadLimits() {
  try {
    const response = await fetch("/v1/limits", { headers: authHeaders() });
    if (!response.ok) return;
    state.limits = await response.json();
    offerKinds(Object.keys(state.limits.kinds));
    showKindHint();
  } catch {
    // the hint keeps its default text
  }
}

// The configured kinds, from /v1/limits; the two built in stay described as they were.
function offerKinds(names) {
  const select = $("#kind");
  const chosen = select.value;
  const known = new Set([...select.options].map((option) => option.value));
  for (const name of names) {
    if (!known.has(name)) select.append(new Option(name, name));
  }
  for (const option of [...select.options]) {
    if (!names.includes(option.value)) option.remove();
  }
  if (names.includes(chosen)) select.value = chosen;
}

function kindRules() {
  return state.limits?.kinds?.[$("#kind").value];
}

function showKindHint() {
  const rules = kindRules();
  if (!rules) return;
  const types = listWords(rules.accept.map(typeName));
  const sizes = Object.values(rules.sizes);
  const least = rules.min_width > 1 || rules.min_height > 1
    ? ` at least ${rules.min_width}\u00d7${rules.min_height} px,` : "";
  $("#limits-hint").textContent =
    `${types},${least} up to ${formatBytes(rules.max_bytes)} each. ` +
    `Each becomes ${sizes.length} variants (${sizes.join(", ")} px).`;
}

// ---- placeholders and variants -------------------------------------------------------

// Custom properties the stylesheet paints behind each image until it has loaded
// (then it clears them, so transparent pixels show the page, not the placeholder).
function placeholderStyle(placeholder) {
  if (!placeholder) return {};
  const style = { "--placeholder-color": placeholder.dominant_color ?? "transparent" };
  try {
    const hash = thumbHashFromBase64(placeholder.thumbhash);
    style["--placeholder-image"] = `url("${thumbHashToDataURL(hash)}")`;
    // Under a hash with transparent parts the colour would show through them.
    if (thumbHashHasAlpha(hash)) style["--placeholder-color"] = "transparent";
  } catch {
    // a hash we cannot read leaves the dominant colour
  }
  return style;
}

function framedImage(variant, style, alt, { lazy = false, maxHeight = PREVIEW_HEIGHT } = {}) {
  const scale = Math.min(1, maxHeight / variant.height);
  const frame = el("a", {
    className: "frame",
    href: variant.url,
    target: "_blank",
    rel: "noopener",
    title: "Open this variant",
  });
  for (const [name, value] of Object.entries(style)) frame.style.setProperty(name, value);
  frame.style.width = `${Math.max(1, Math.round(variant.width * scale))}px`;
  frame.style.aspectRatio = `${variant.width} / ${variant.height}`;
  const img = el("img", {
    src: variant.url,
    alt,
    width: variant.width,
    height: variant.height,
    decoding: "async",
    loading: lazy ? "lazy" : "eager",
  });
  img.addEventListener(
    "load",
    () => {
      frame.classList.add("loaded");
      // Drop the placeholder once the fade-in is over (see app.css).
      setTimeout(() => frame.classList.add("settled"), 400);
    },
    { once: true },
  );
  img.addEventListener("error", () => frame.classList.add("broken"), { once: true });
  frame.append(img);
  return frame;
}

function variantsView(media) {
  const style = placeholderStyle(media.placeholder);
  const figures = Object.entries(media.variants).map(([name, v]) =>
    el(
      "figure",
      { className: "variant" },
      framedImage(v, style, `${name} variant, ${v.width}×${v.height}`),
      el(
        "figcaption",
        {},
        el("span", { className: "variant-name", textContent: name }),
        el("span", { textContent: `${v.width}×${v.height}` }),
        el("span", { textContent: formatBytes(v.bytes) }),
      ),
    ),
  );
  return el("div", { className: "variants" }, ...figures);
}

function mediaFacts(media) {
  const o = media.original;
  const removed = media.processing?.removed?.length ? ` · removed ${media.processing.removed.join(", ")}` : "";
  const where = media.space ? ` in ${media.space}` : "";
  return `${typeName(o.mime)} ${o.width}×${o.height}, ${formatBytes(o.bytes)} → ${media.kind}, ${media.visibility}${where}${removed}`;
}

// ---- uploads -------------------------------------------------------------------------

function uploadCard(file) {
  const progress = el("progress", { max: 100, value: 0 });
  progress.setAttribute("aria-label", `Upload of ${file.name}`);
  const stateText = el("span", { className: "upload-state", textContent: "Waiting" });
  const card = el(
    "li",
    { className: "upload" },
    el(
      "div",
      { className: "upload-head" },
      el("span", { className: "upload-name", textContent: file.name || "pasted image" }),
      el("span", { className: "upload-size", textContent: formatBytes(file.size) }),
      stateText,
    ),
    progress,
  );
  card.dataset.state = "waiting";
  return { card, progress, stateText };
}

function refuse(view, file, problem) {
  view.card.dataset.state = "refused";
  view.progress.remove();
  view.stateText.textContent = "Refused";
  view.card.append(problemBox(problem));
  announce(`${file.name} was refused: ${problem.title}. ${problemSentence(problem)}`);
}

function accept(view, file, media) {
  view.card.dataset.state = "done";
  view.card.dataset.mediaId = media.id;
  view.progress.remove();
  view.stateText.textContent = "Ready";
  view.card.append(
    el("p", { className: "facts" }, el("code", { textContent: media.id }), ` ${mediaFacts(media)}`),
    variantsView(media),
  );
  announce(`${file.name} is uploaded: five variants are ready.`);
  addToLibrary(media, true);
}

function handleFiles(files) {
  const list = [...files];
  if (!list.length) return;
  if (!state.token) {
    announce("Paste a token first.");
    $("#token").focus();
    return;
  }
  // Newest batch on top, in the order the files were chosen.
  const batch = document.createDocumentFragment();
  for (const file of list) {
    const view = uploadCard(file);
    batch.append(view.card);
    state.queue.push({ file, view });
  }
  $("#uploads").prepend(batch);
  announce(`${list.length} file${list.length > 1 ? "s" : ""} queued.`);
  pump();
}

function pump() {
  while (state.running < PARALLEL_UPLOADS && state.queue.length) {
    const { file, view } = state.queue.shift();
    state.running++;
    upload(file, view).finally(() => {
      state.running--;
      pump();
    });
  }
}

function upload(file, view) {
  const limit = kindRules()?.max_bytes ?? state.limits?.max_upload_bytes;
  if (limit && file.size > limit) {
    // nginx would refuse it before reading, often by closing the connection mid-send,
    // which a browser reports as a bare network error: say it here instead.
    refuse(view, file, {
      status: 413,
      code: "payload_too_large",
      title: "Payload too large",
      detail: `The file is ${formatBytes(file.size)}; the limit is ${formatBytes(limit)}.`,
    });
    return Promise.resolve();
  }
  if ($("#direct").checked) return uploadInSession(file, view);
  const form = new FormData();
  for (const [name, value] of Object.entries(chosenOptions())) form.append(name, value);
  form.append("file", file, file.name || "pasted-image");

  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/v1/media");
    xhr.setRequestHeader("Authorization", `Bearer ${state.token}`);
    trackProgress(xhr, view);
    xhr.addEventListener("load", () => {
      if (xhr.status === 200 || xhr.status === 201) {
        try {
          accept(view, file, JSON.parse(xhr.responseText));
        } catch {
          refuse(view, file, problemFrom(xhr.status, "", "The answer was not valid JSON."));
        }
      } else {
        refuse(view, file, problemFrom(xhr.status, xhr.responseText, xhr.statusText));
      }
      resolve();
    });
    const lost = (detail) => () => {
      refuse(view, file, { code: "network_error", title: "Upload failed", detail });
      resolve();
    };
    xhr.addEventListener("error", lost("The connection closed before the server answered."));
    xhr.addEventListener("timeout", lost("The server took too long to answer."));
    xhr.timeout = SEND_TIMEOUT_MS;
    xhr.send(form);
  });
}

// The options above, named as the API names them (form fields and session JSON alike).
function chosenOptions() {
  const options = { kind: $("#kind").value };
  // Media in a space are always private: the visibility choice applies outside spaces.
  const space = $("#space").value.trim();
  if (space) options.space = space;
  else options.visibility = $("#visibility").value;
  const collection = $("#collection").value.trim();
  if (collection) options.collection = collection;
  return options;
}

// The bar follows the bytes as they leave; once all are out, the server is working.
function trackProgress(xhr, view) {
  view.card.dataset.state = "uploading";
  view.stateText.textContent = "Uploading 0%";
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    const percent = Math.round((event.loaded / event.total) * 100);
    view.progress.value = percent;
    view.stateText.textContent = `Uploading ${percent}%`;
  });
  xhr.upload.addEventListener("load", () => {
    // Every byte is sent; the server now makes the variants.
    view.card.dataset.state = "processing";
    view.progress.removeAttribute("value");
    view.stateText.textContent = "Processing…";
  });
}

// ---- direct to storage: an upload session --------------------------------------------

// POST /v1/uploads declares the file, its bytes go where `upload` says (the bucket, or the
// app's signed URL on local disk), then complete checks them and makes the variants.
async function uploadInSession(file, view) {
  view.stateText.textContent = "Starting…";
  const sha256 = await sha256Hex(file);
  const session = await postApi("/v1/uploads", {
    ...chosenOptions(),
    content_type: file.type || "application/octet-stream",
    size: file.size,
    ...(sha256 ? { sha256 } : {}),
  });
  if (session.problem) return refuse(view, file, session.problem);
  const unsent = await sendToStore(session.body.upload, file, view);
  if (unsent) return refuse(view, file, unsent);
  const completed = await postApi(session.body.complete_url);
  if (completed.problem) return refuse(view, file, completed.problem);
  accept(view, file, completed.body);
}

// Hex SHA-256 of the file, so complete can tell whether the store got these very bytes;
// null where crypto.subtle is missing (plain-http pages) or the file is too big to read.
async function sha256Hex(file) {
  if (!globalThis.crypto?.subtle || file.size > HASH_MAX_BYTES) return null;
  try {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
  } catch {
    return null; // the file could not be read; the session goes without a checksum
  }
}

// A POST to the API with the token: `{body}` with the JSON answer, else `{problem}`.
async function postApi(path, json) {
  const headers = authHeaders();
  if (json) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(path, { method: "POST", headers, body: json && JSON.stringify(json) });
  } catch {
    return { problem: { code: "network_error", title: "Upload failed", detail: "Could not reach the server." } };
  }
  const text = await response.text();
  if (!response.ok) return { problem: problemFrom(response.status, text, response.statusText) };
  try {
    return { body: JSON.parse(text) };
  } catch {
    return { problem: problemFrom(response.status, "", "The answer was not valid JSON.") };
  }
}

// Send the bytes as the session says, with progress and without the token (the URL is
// signed); null once the store has them, else the problem.
function sendToStore(upload, file, view) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open(upload.method, upload.url);
    for (const [name, value] of Object.entries(upload.headers ?? {})) xhr.setRequestHeader(name, value);
    let body = file;
    if (upload.fields) {
      // A presigned POST: the policy's fields first, the file last.
      body = new FormData();
      for (const [name, value] of Object.entries(upload.fields)) body.append(name, value);
      body.append("file", file, file.name || "pasted-image");
    }
    trackProgress(xhr, view);
    xhr.addEventListener("load", () => resolve(xhr.status >= 200 && xhr.status < 300 ? null : storeProblem(xhr)));
    const lost = (detail) => () => resolve({ code: "network_error", title: "Upload failed", detail });
    // A bucket whose CORS rules leave this page out looks just like one that is down.
    xhr.addEventListener("error", lost("The store did not answer, or its CORS rules do not allow this page."));
    xhr.addEventListener("timeout", lost("The store took too long to answer."));
    xhr.timeout = SEND_TIMEOUT_MS;
    xhr.send(body);
  });
}

// The store's refusal: the app's problem+json on local disk, S3's XML <Error> on a bucket.
function storeProblem(xhr) {
  // Only XML is parsed as XML: a parse error would make Chromium style its error inline.
  const xml = /xml/.test(xhr.getResponseHeader("Content-Type") ?? "");
  const error = xml && new DOMParser().parseFromString(xhr.responseText, "application/xml").querySelector("Error");
  if (!error) return problemFrom(xhr.status, xhr.responseText, xhr.statusText);
  return {
    status: xhr.status,
    code: error.querySelector("Code")?.textContent,
    title: "Storage refused the upload",
    detail: error.querySelector("Message")?.textContent ?? xhr.statusText,
  };
}

// ---- library -------------------------------------------------------------------------

function libraryItem(media) {
  const variant = media.variants.medium ?? Object.values(media.variants).at(-1);
  const remove = el("button", { type: "button", className: "danger", textContent: "Delete" });
  remove.setAttribute("aria-label", `Delete media ${media.id}`);
  const item = el(
    "li",
    { className: "item" },
    el(
      "div",
      { className: "item-image" },
      variant ? framedImage(variant, placeholderStyle(media.placeholder), `Media ${media.id}`, { lazy: true, maxHeight: 140 }) : null,
    ),
    el(
      "div",
      { className: "item-meta" },
      el("code", { textContent: media.id }),
      el("span", { textContent: mediaFacts(media) }),
      el("time", { dateTime: media.created_at, textContent: new Date(media.created_at).toLocaleString() }),
    ),
    remove,
  );
  item.dataset.mediaId = media.id;
  remove.addEventListener("click", () => deleteMedia(media, item, remove));
  return item;
}

function addToLibrary(media, first) {
  const library = $("#library");
  if (library.querySelector(`[data-media-id="${media.id}"]`)) return;
  const item = libraryItem(media);
  if (first) library.prepend(item);
  else library.append(item);
  $("#library-note").hidden = true;
}

async function loadLibrary(reset) {
  if (!state.token) return;
  if (reset) state.cursor = null;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.cursor) params.set("cursor", state.cursor);
  const note = $("#library-note");
  let response;
  try {
    response = await fetch(`/v1/media?${params}`, { headers: authHeaders() });
  } catch {
    note.hidden = false;
    note.textContent = "Could not reach the server.";
    return;
  }
  const text = await response.text();
  if (!response.ok) {
    const problem = problemFrom(response.status, text, response.statusText);
    note.hidden = false;
    note.replaceChildren(problemBox(problem));
    if (response.status === 401) showTokenState(`The token was refused: ${problem.detail}`, true);
    return;
  }
  const page = JSON.parse(text);
  if (reset) $("#library").replaceChildren();
  for (const media of page.items) addToLibrary(media, false);
  state.cursor = page.next_cursor;
  $("#more").hidden = !state.cursor;
  note.hidden = $("#library").children.length > 0;
  note.textContent = "Nothing uploaded yet.";
}

async function deleteMedia(media, item, button) {
  button.disabled = true;
  button.textContent = "Deleting…";
  let response;
  try {
    response = await fetch(`/v1/media/${encodeURIComponent(media.id)}`, {
      method: "DELETE",
      headers: authHeaders(),
    });
  } catch {
    response = null;
  }
  if (response && (response.status === 204 || response.status === 404)) {
    // Keep keyboard focus in the list: on the next item's button, else the heading.
    const next = item.nextElementSibling ?? item.previousElementSibling;
    item.remove();
    for (const card of document.querySelectorAll(`.upload[data-media-id="${media.id}"]`)) {
      card.dataset.state = "deleted";
      card.querySelector(".upload-state").textContent = "Deleted";
    }
    (next?.querySelector("button") ?? $("#library-heading")).focus();
    $("#library-note").hidden = $("#library").children.length > 0;
    announce(`Media ${media.id} deleted.`);
    return;
  }
  const problem = response
    ? problemFrom(response.status, await response.text(), response.statusText)
    : { code: "network_error", title: "Delete failed", detail: "Could not reach the server." };
  button.disabled = false;
  button.textContent = "Delete";
  item.querySelector(".problem")?.remove();
  item.querySelector(".item-meta").append(problemBox(problem));
  announce(`Media ${media.id} was not deleted: ${problem.title}.`);
}

// ---- wiring --------------------------------------------------------------------------

function init() {
  const tokenInput = $("#token");
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (tokenInput.value.trim()) useToken(tokenInput.value);
  });

  $("#kind").addEventListener("change", showKindHint);

  const files = $("#files");
  files.addEventListener("change", () => {
    handleFiles(files.files);
    files.value = ""; // so choosing the same file again is a new upload
  });

  const zone = $("#dropzone");
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    zone.addEventListener(type, () => zone.classList.remove("over"));
  }
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    handleFiles(event.dataTransfer.files);
  });
  // A file dropped beside the zone must not navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());
  document.addEventListener("paste", (event) => {
    const pasted = [...(event.clipboardData?.files ?? [])];
    if (pasted.length && event.target !== tokenInput) {
      event.preventDefault();
      handleFiles(pasted);
    }
  });

  $("#refresh").addEventListener("click", () => loadLibrary(true));
  $("#more").addEventListener("click", () => loadLibrary(false));

  const devToken = document.querySelector('meta[name="mediasvc-dev-token"]')?.content ?? "";
  const saved = sessionStorage.getItem(TOKEN_KEY) ?? "";
  const token = saved || devToken;
  if (token) {
    tokenInput.value = token;
    useToken(token, !saved);
  }
}

init();
