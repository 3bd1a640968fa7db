// Uploads one image with client.ts and prints what it got, as JSON:
//   node upload.js API TOKEN BASE64_IMAGE
import { MediasvcError, preview, uploadImage } from "./client.js";

// Node's process, without @types/node: only what is used here.
declare const process: { argv: string[]; exitCode?: number };

const [api, token, image] = process.argv.slice(2);
if (api === undefined || token === undefined || image === undefined) {
  throw new Error("usage: node upload.js API TOKEN BASE64_IMAGE");
}
const bytes = Uint8Array.from(atob(image), (c) => c.charCodeAt(0));
try {
  const { media, location } = await uploadImage(api, new Blob([bytes], { type: "image/jpeg" }), {
    token,
    kind: "avatar",
  });
  console.log(JSON.stringify({ id: media.id, location, status: media.status, ...preview(media) }));
  await uploadImage(api, new Blob([new Uint8Array(16)]), { token });
} catch (error) {
  if (!(error instanceof MediasvcError)) throw error;
  console.log(JSON.stringify({ refused: error.status, code: error.problem.code }));
}
