// Calls the Jobs service through the real @trigger.dev/sdk@2.3.18 TriggerClient, which parses every answer with
// the zod schemas of @trigger.dev/core. argv[2]: a JSON list of [method, ...arguments]; prints the parsed answers
// as a JSON list, or the first error on stderr with exit status 1.
// Env: TRIGGER_API_KEY, TRIGGER_API_URL.
"use strict";

const { TriggerClient } = require("@trigger.dev/sdk");

const client = new TriggerClient({
  id: "compat-client",
  apiKey: process.env.TRIGGER_API_KEY,
  apiUrl: process.env.TRIGGER_API_URL,
});

async function main() {
  const answers = [];
  for (const [method, ...args] of JSON.parse(process.argv[2])) {
    try {
      answers.push(await client[method](...args));
    } catch (error) {
      process.stderr.write(`${method}(${JSON.stringify(args)}): ${error?.stack ?? error}\n`);
      process.exit(1);
    }
  }
  process.stdout.write(JSON.stringify(answers));
}

main();
