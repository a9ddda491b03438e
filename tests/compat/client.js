// Calls the Jobs service through the real @trigger.dev/sdk@2.3.18 TriggerClient, which parses every answer with
// the zod schemas of @trigger.dev/core. argv[2]: a JSON list of [method, ...arguments], where a method may be a
// path such as "store.env.get" (client.store.env, from outside any run); prints the parsed answers as a JSON
// list (undefined as null), or the first error on stderr with exit status 1.
// Env: TRIGGER_API_KEY, TRIGGER_API_URL.
"use strict";

const { TriggerClient } = require("@trigger.dev/sdk");

const client = new TriggerClient({
  id: "compat-client",
  apiKey: process.env.TRIGGER_API_KEY,
  apiUrl: process.env.TRIGGER_API_URL,
});

async function call(path, args) {
  const names = path.split(".");
  const owner = names.slice(0, -1).reduce((object, name) => object[name], client);
  return owner[names.at(-1)](...args);
}

async function main() {
  const answers = [];
  for (const [method, ...args] of JSON.parse(process.argv[2])) {
    try {
      const answer = await call(method, args);
      answers.push(answer === undefined ? null : answer);
    } catch (error) {
      process.stderr.write(`${method}(${JSON.stringify(args)}): ${error?.stack ?? error}\n`);
      process.exit(1);
    }
  }
  process.stdout.write(JSON.stringify(answers));
}

main();
