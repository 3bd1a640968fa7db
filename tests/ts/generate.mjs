// Writes the types openapi-fetch's client is checked against:
//   node generate.mjs openapi.json fetch-api.d.ts
// openapi-typescript 7 types every `type: string` as `string`, `format: binary` included
// (it ignores `format`, and has no option for it), so a multipart file part would not
// accept a Blob; its Node API's `transform` is the documented way to map that part to
// `Blob`, which FormData sends as a file.
import { readFileSync, writeFileSync } from "node:fs";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const [input, output] = process.argv.slice(2);
if (input === undefined || output === undefined) {
  throw new Error("usage: node generate.mjs OPENAPI_JSON OUTPUT_D_TS");
}
const BLOB = ts.factory.createTypeReferenceNode("Blob");
const ast = await openapiTS(JSON.parse(readFileSync(input, "utf8")), {
  transform(schema) {
    if (schema.format === "binary") return BLOB;
    return undefined;
  },
});
writeFileSync(output, astToString(ast));
