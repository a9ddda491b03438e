// Real @trigger.dev/sdk@2.3.18 v2 endpoint used by the Jobs service compat tests.
// Env: PORT (0 = any free port), TRIGGER_API_KEY, TRIGGER_API_URL, ENDPOINT_ID.
"use strict";

const express = require("express");
const { TriggerClient, eventTrigger } = require("@trigger.dev/sdk");
const { createMiddleware } = require("@trigger.dev/express");
const { z } = require("zod");

const port = Number(process.env.PORT ?? 3999);
const client = new TriggerClient({
  id: process.env.ENDPOINT_ID || "compat-endpoint",
  apiKey: process.env.TRIGGER_API_KEY,
  apiUrl: process.env.TRIGGER_API_URL,
});

// None of these jobs use `io`, so executing them never calls back to TRIGGER_API_URL.
client.defineJob({
  id: "return-value",
  name: "Return value",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.return" }),
  run: async (payload) => ({ ok: true, echo: payload }),
});

client.defineJob({
  id: "throws",
  name: "Throws",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.throws" }),
  run: async () => {
    throw new Error("boom from compat job");
  },
});

client.defineJob({
  id: "with-schema",
  name: "With schema",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.schema", schema: z.object({ n: z.number() }) }),
  run: async (payload) => ({ doubled: payload.n * 2 }),
});

const app = express();
// No body parser: the adapter streams the raw request body into the SDK.
app.use(createMiddleware(client, "/api/trigger"));

const server = app.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0)); // exit at once, even with open keep-alive sockets
}
