// Parses answers with the zod schemas of @trigger.dev/core 2.3.18, the ones the SDK parses them with.
// stdin: a JSON list of {label, schema, body}; `schema` names an export of @trigger.dev/core, with `[]` for
// an array of it. Prints a JSON list of {label, ok, issues}.
"use strict";

const core = require("@trigger.dev/core");

function schemaOf(name) {
  const many = name.endsWith("[]");
  const schema = core[many ? name.slice(0, -2) : name];
  if (!schema || typeof schema.safeParse !== "function") throw new Error(`@trigger.dev/core has no schema ${name}`);
  return many ? schema.array() : schema;
}

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const results = JSON.parse(input).map(({ label, schema, body }) => {
    const parsed = schemaOf(schema).safeParse(body);
    return { label, ok: parsed.success, issues: parsed.success ? [] : parsed.error.issues };
  });
  process.stdout.write(JSON.stringify(results));
});
