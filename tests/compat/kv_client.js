// client.store.env of the real @trigger.dev/sdk@2.3.18 TriggerClient, from outside any run. argv[2]: a JSON
// list of [method, ...arguments] (get, set, has, delete); prints the answers as a JSON list (undefined as
// null), or the first error on stderr with exit status 1. Env: TRIGGER_API_KEY, TRIGGER_API_URL.
"use strict";

const { TriggerClient } = require("@trigger.dev/sdk");

const client = new TriggerClient({
  id: "compat-kv-client",
  apiKey: process.env.TRIGGER_API_KEY,
  apiUrl: process.env.TRIGGER_API_URL,
});

async function main() {
  const answers = [];
  for (const [method, ...args] of JSON.parse(process.argv[2])) {
    try {
      const answer = await client.store.env[method](...args);
      answers.push(answer === undefined ? null : answer);
    } catch (error) {
      process.stderr.write(`store.env.${method}(${JSON.stringify(args)}): ${error?.stack ?? error}\n`);
      process.exit(1);
    }
  }
  process.stdout.write(JSON.stringify(answers));
}

main();
