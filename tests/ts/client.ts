// A small mediasvc client typed by `api.d.ts`, which tests/test_generated_client.py
// generates from the served OpenAPI document with openapi-typescript (as the README does).
import type { components, paths } from "./api";

export type Media = components["schemas"]["Media"];
export type Problem = components["schemas"]["Problem"];
export type ProblemCode = components["schemas"]["ProblemCode"];
export type Kind = NonNullable<components["schemas"]["UploadForm"]["kind"]>;
type Created = paths["/v1/media"]["post"]["responses"][201]["content"]["application/json"];
type Limits = paths["/v1/limits"]["get"]["responses"][200]["content"]["application/json"];
type TooLarge = components["schemas"]["Problem413"];

/** A refusal, with the problem document the service sent. */
export class MediasvcError extends Error {
  constructor(readonly status: number, readonly problem: Problem) {
    super(problem.detail);
  }
}

/** Upload one image; the fields go before the file, so the kind's limits apply at once. */
export async function uploadImage(
  api: string,
  file: Blob,
  options: { token: string; kind?: Kind; collection?: string; idempotencyKey?: string },
): Promise<{ media: Created; location: string | null }> {
  const form = new FormData();
  if (options.kind !== undefined) form.append("kind", options.kind);
  if (options.collection !== undefined) form.append("collection", options.collection);
  form.append("file", file, "upload");
  const headers: Record<string, string> = { Authorization: `Bearer ${options.token}` };
  if (options.idempotencyKey !== undefined) headers["Idempotency-Key"] = options.idempotencyKey;
  const response = await fetch(`${api}/v1/media`, { method: "POST", headers, body: form });
  if (!response.ok) {
    throw new MediasvcError(response.status, (await response.json()) as Problem);
  }
  return { media: (await response.json()) as Created, location: response.headers.get("Location") };
}

/** What to show first: the smallest variant's URL, and what to paint until it loads. */
export function preview(media: Media): { url: string | undefined; color: string | undefined } {
  return { url: media.variants.thumbnail?.url, color: media.placeholder?.dominant_color };
}

/** The byte cap for a kind, to resize before sending. */
export async function maxBytes(api: string, kind: Kind): Promise<number | undefined> {
  const limits = (await (await fetch(`${api}/v1/limits`)).json()) as Limits;
  return limits.kinds[kind]?.max_bytes;
}

/** Whether a refusal says the file was too large, and what the cap was. */
export function tooLarge(problem: Problem): number | undefined {
  if (problem.code !== "payload_too_large") return undefined;
  const narrowed: TooLarge = { ...problem, status: 413, code: problem.code };
  return narrowed.limit;
}

// The generated types are as precise as the document: these must not compile.
// @ts-expect-error: not a problem code
export const unknownCode: ProblemCode = "teapot";
// @ts-expect-error: visibility is public or private
export const wrongVisibility: Media["visibility"] = "secret";
// @ts-expect-error: a Media always has an id and variants
export const incomplete: Media = { owner: "alice" };
