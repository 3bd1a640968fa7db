// Uploads, reads, lists and is refused with fetch_client.ts, printing one JSON line:
//   node fetch_upload.js API TOKEN BASE64_IMAGE
import { connect, hasStatus, preview, upload } from "./fetch_client.js";

// Node's process, without @types/node: only what is used here.
declare const process: { argv: string[] };

const [api, token, image] = process.argv.slice(2);
if (api === undefined || token === undefined || image === undefined) {
  throw new Error("usage: node fetch_upload.js API TOKEN BASE64_IMAGE");
}
const client = connect(api, token);
const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));

const created = await upload(client, {
  kind: "avatar",
  file: new Blob([bytes], { type: "image/jpeg" }),
});
if (created.error !== undefined) throw new Error(`upload refused: ${created.error.code}`);
const media = created.data;

const read = await client.GET("/v1/media/{media_id}", { params: { path: { media_id: media.id } } });
if (read.error !== undefined) throw new Error(`read refused: ${read.error.code}`);
const listed = await client.GET("/v1/media", { params: { query: { limit: 10 } } });
if (listed.error !== undefined) throw new Error(`list refused: ${listed.error.code}`);
const limits = await client.GET("/v1/limits");
if (limits.error !== undefined) throw new Error(`limits refused: ${limits.error.code}`);

// Sixteen zero bytes: no image type's magic, so 415 with the accepted types.
const refused = await upload(client, { file: new Blob([new Uint8Array(16)]) });
let problem: { status: 415; code: string; accepted: string[] | undefined } | null = null;
if (refused.error !== undefined && hasStatus(refused.error, 415)) {
  // Problem415's codes only: a 413's code here would not compile.
  const code: "unsupported_media_type" | "unsupported_content_encoding" = refused.error.code;
  problem = { status: refused.error.status, code, accepted: refused.error.accepted };
}

console.log(
  JSON.stringify({
    uploaded: {
      id: media.id,
      status: media.status,
      location: created.response.headers.get("Location"),
      variants: Object.keys(media.variants),
      sha256: media.original.sha256,
      ...preview(media),
    },
    read: { id: read.data.id, status: read.data.status, sha256: read.data.original.sha256 },
    listed: listed.data.items.map((item) => item.id),
    limits: { kinds: Object.keys(limits.data.kinds), avatar: limits.data.kinds.avatar?.crop },
    refused: problem,
  }),
);
