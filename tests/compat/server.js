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

// The first three jobs do not use `io`, so executing them never calls back to TRIGGER_API_URL.
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

// Counters per run, kept across re-executions, so a test can see that a finished step never runs again.
const calls = {};
function count(runId, step) {
  calls[runId] = calls[runId] ?? {};
  calls[runId][step] = (calls[runId][step] ?? 0) + 1;
  return calls[runId][step];
}

client.defineJob({
  id: "two-steps",
  name: "Two steps",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.steps" }),
  run: async (payload, io, ctx) => {
    count(ctx.run.id, "executions");
    const first = await io.runTask("step-1", async () => {
      count(ctx.run.id, "step-1");
      return { a: 1 };
    });
    await io.logger.info("between the steps", { first });
    const progress = await io.createStatus("progress", { label: "Halfway", state: "loading", data: { p: 0.5 } });
    await io.wait("pause", 1);
    const second = await io.runTask("step-2", async () => {
      count(ctx.run.id, "step-2");
      return { b: 2 };
    });
    await progress.update("done", { state: "success", data: { p: 1 } });
    return { first, second, calls: calls[ctx.run.id] };
  },
});

client.defineJob({
  id: "waits",
  name: "Waits",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.wait" }),
  run: async (payload, io) => {
    await io.wait("sleep", payload.seconds ?? 2);
    return { woke: true };
  },
});

client.defineJob({
  id: "flaky-task",
  name: "Flaky task",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.flaky" }),
  run: async (payload, io, ctx) => {
    const result = await io.runTask(
      "flaky",
      async () => {
        const attempt = count(ctx.run.id, "flaky");
        if (attempt <= 2) throw new Error(`flaky failure ${attempt}`);
        return { attempt };
      },
      { retry: { limit: 5, minTimeoutInMs: 200, factor: 1, randomize: false } }
    );
    return result;
  },
});

client.defineJob({
  id: "sends-event",
  name: "Sends an event",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.send" }),
  run: async (payload, io, ctx) => {
    const sent = await io.sendEvent("send", { name: "compat.chained", payload: { from: ctx.run.id, n: payload.n } });
    return { sentEventId: sent.id };
  },
});

client.defineJob({
  id: "chained",
  name: "Triggered by another job",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.chained" }),
  run: async (payload) => ({ received: payload }),
});

client.defineJob({
  id: "disabled",
  name: "Disabled",
  version: "1.0.0",
  enabled: false,
  trigger: eventTrigger({ name: "compat.disabled" }),
  run: async () => ({ ran: true }),
});

client.defineJob({
  id: "task-fails",
  name: "Task fails",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.task-fails" }),
  run: async (payload, io) => {
    await io.runTask("doomed", async () => {
      throw new Error("task failed for good");
    });
  },
});

client.defineJob({
  id: "filtered",
  name: "Only gold orders",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.order", filter: { tier: ["gold"], total: [{ $gt: 100 }] } }),
  run: async (payload) => ({ order: payload }),
});

client.defineJob({
  id: "notified",
  name: "Hears how its runs end",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.notified" }),
  run: async () => ({ done: true }),
  onSuccess: async (notification) => {
    await client.sendEvent({
      id: `heard-${notification.id}`,
      name: "compat.heard",
      payload: { status: notification.status, output: notification.output },
    });
  },
});

// How many runs of each concurrency key are executing at once, and the most seen.
const active = {};
const peak = {};
async function occupy(key, ms) {
  active[key] = (active[key] ?? 0) + 1;
  peak[key] = Math.max(peak[key] ?? 0, active[key]);
  await new Promise((resolve) => setTimeout(resolve, ms));
  active[key] -= 1;
  return peak[key];
}

client.defineJob({
  id: "sleeps",
  name: "Sleeps a little",
  version: "1.0.0",
  trigger: eventTrigger({ name: "compat.sleep" }),
  run: async (payload) => {
    await new Promise((resolve) => setTimeout(resolve, payload.ms ?? 20));
    return { slept: payload.ms ?? 20 };
  },
});

client.defineJob({
  id: "limited",
  name: "Two at a time",
  version: "1.0.0",
  concurrencyLimit: 2,
  trigger: eventTrigger({ name: "compat.limited" }),
  run: async (payload) => ({ peak: await occupy("limited", payload.ms ?? 150) }),
});

for (const id of ["grouped-a", "grouped-b"]) {
  client.defineJob({
    id,
    name: `Shares a group (${id})`,
    version: "1.0.0",
    concurrencyLimit: { id: "pair", limit: 2 },
    trigger: eventTrigger({ name: `compat.${id}` }),
    run: async (payload) => ({ peak: await occupy("pair", payload.ms ?? 150) }),
  });
}

require("./jobs_kv").define(client, { count, calls });
require("./jobs_sched").define(client, { count });
require("./jobs_exec").define(client, { count, calls });
require("./jobs_dash").define(client);

const app = express();
// No body parser: the adapter streams the raw request body into the SDK.
app.use(createMiddleware(client, "/api/trigger"));

const server = app.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${server.address().port}\n`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => process.exit(0)); // exit at once, even with open keep-alive sockets
}
