// Jobs of the exec compat tests (tests/compat/test_exec.py): server-performed tasks (io.backgroundFetch,
// backgroundFetchResponse, backgroundPoll), auto-yield with a completed task, and cheap replays of many tasks.
"use strict";

const { eventTrigger } = require("@trigger.dev/sdk");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function define(client, { count, calls }) {
  client.defineJob({
    id: "exec-fetch",
    name: "Fetches in the background",
    version: "1.0.0",
    trigger: eventTrigger({ name: "exec.fetch" }),
    run: async (payload, io, ctx) => {
      count(ctx.run.id, "executions");
      let result;
      if (payload.kind === "poll") {
        result = { body: await io.backgroundPoll("poll", payload.poll) };
      } else if (payload.kind === "response") {
        result = { response: await io.backgroundFetchResponse("fetch", payload.url, payload.requestInit, payload.options) };
      } else {
        result = { body: await io.backgroundFetch("fetch", payload.url, payload.requestInit, payload.options) };
      }
      // A task after the fetch: the run goes on once the server has performed it.
      const after = await io.runTask("after", async () => ({ n: count(ctx.run.id, "after") }));
      return { ...result, after, calls: calls[ctx.run.id] };
    },
  });

  client.defineJob({
    id: "exec-auto-yield",
    name: "Tasks that outlast a chunk",
    version: "1.0.0",
    trigger: eventTrigger({ name: "exec.auto-yield" }),
    run: async (payload, io, ctx) => {
      count(ctx.run.id, "executions");
      const results = [];
      for (let i = 1; i <= (payload.tasks ?? 3); i++) {
        results.push(
          await io.runTask(`long-${i}`, async () => {
            count(ctx.run.id, `long-${i}`);
            await sleep(payload.ms ?? 2300);
            return { i };
          })
        );
      }
      return { results, calls: calls[ctx.run.id] };
    },
  });

  // `tasks` steps, every other one an io.runTask (its body counted) and the rest io.logger calls (noop tasks),
  // with an io.yield every `yieldEvery` steps so that the run is executed again and replays what it did.
  // Each execution records what the SDK's cache saved it (io.stats) and how many io calls it made.
  client.defineJob({
    id: "exec-many-tasks",
    name: "Many tasks",
    version: "1.0.0",
    trigger: eventTrigger({ name: "exec.many-tasks" }),
    run: async (payload, io, ctx) => {
      const runId = ctx.run.id;
      const execution = count(runId, "executions");
      const stats = (calls[runId].stats = calls[runId].stats ?? []);
      const total = payload.tasks ?? 500;
      const every = payload.yieldEvery ?? 50;
      const pad = "x".repeat(payload.pad ?? 100);
      let ioCalls = 0;
      let result;
      try {
        let sum = 0;
        for (let i = 0; i < total; i++) {
          if (i > 0 && i % every === 0) await io.yield(`after-${i}`);
          ioCalls++;
          if (i % 2 === 0) {
            const output = await io.runTask(`task-${i}`, async () => {
              count(runId, `task-${i}`);
              return { i, pad };
            });
            sum += output.i;
          } else {
            await io.logger.info(`log ${i}`);
          }
        }
        const bodies = Object.entries(calls[runId]).filter(([key]) => key.startsWith("task-"));
        result = { sum, bodies: bodies.length, mostRuns: Math.max(...bodies.map(([, runs]) => runs)) };
      } finally {
        stats.push({ execution, ioCalls, ...io.stats });
      }
      return { ...result, stats };
    },
  });
}

module.exports = { define };
