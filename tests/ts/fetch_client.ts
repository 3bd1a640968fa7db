// A mediasvc client made with openapi-fetch: each path, parameter, body and answer is typed
// by `fetch-api.d.ts`, which generate.mjs writes from the served OpenAPI document, so there
// is no cast anywhere (tests/test_generated_client.py checks that too).
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./fetch-api";

export type Mediasvc = Client<paths>;
export type UploadForm = paths["/v1/media"]["post"]["requestBody"]["content"]["multipart/form-data"];
export type Problem = components["schemas"]["Problem"];

/** A client for the API at `baseUrl`, every request carrying `token`. */
export function connect(baseUrl: string, token: string): Mediasvc {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${token}` } });
}

/** The multipart body: the fields before the file, so the kind's limits apply at once. */
export function formData({ file, ...fields }: UploadForm): FormData {
  const form = new FormData();
  for (const [name, value] of Object.entries(fields)) form.append(name, value);
  form.append("file", file, "upload");
  return form;
}

/** POST /v1/media: the upload's Media, or the problem documented for the refusal. */
export function upload(client: Mediasvc, form: UploadForm, idempotencyKey?: string) {
  const header = idempotencyKey === undefined ? {} : { "Idempotency-Key": idempotencyKey };
  return client.POST("/v1/media", { body: form, bodySerializer: formData, params: { header } });
}

// The statuses an operation documents one by one (not its `default`, whose `status` is any
// number).
type Listed<E> = E extends { status: infer S } ? (number extends S ? never : S) : never;

/** Whether `problem` has one of the statuses its operation lists, narrowing it to that
 * status's problem (`Problem415`: its own codes and members). OpenAPI's `default` answers
 * only the statuses not listed, which TypeScript cannot say ("any number but these"), so
 * openapi-fetch's `error` keeps the default `Problem` beside each; this guard drops it. */
export function hasStatus<E extends Problem, const S extends Listed<E>>(
  problem: E,
  status: S,
): problem is Extract<E, { status: S }> {
  return problem.status === status;
}

/** What to show first: the smallest variant's URL, and what to paint until it loads. */
export function preview(media: components["schemas"]["Media"]) {
  return { url: media.variants.thumbnail?.url, color: media.placeholder?.dominant_color };
}

// The generated types are as precise as the document: these must not compile.
// @ts-expect-error: the file part is a Blob, not a string
export const stringFile: UploadForm = { file: "photo.jpg" };
// @ts-expect-error: not a kind the configuration has
export const unknownKind: UploadForm = { file: new Blob(), kind: "banner" };
export async function undocumented(client: Mediasvc): Promise<void> {
  // @ts-expect-error: the path parameter is media_id
  await client.GET("/v1/media/{media_id}", { params: { path: { id: "m" } } });
  const { error } = await upload(client, { file: new Blob() });
  // @ts-expect-error: an upload is never refused with 404
  if (error !== undefined) hasStatus(error, 404);
}
