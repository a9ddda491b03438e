// Jobs of the key-value store (io.store), io.waitForEvent and run control, for tests/compat/test_kv.py.
// `helpers.count(runId, step)` counts a step of a run (kept across re-executions); `helpers.calls` holds them.
"use strict";

const { eventTrigger } = require("@trigger.dev/sdk");

function define(client, { count, calls }) {
  client.defineJob({
    id: "kv-store",
    name: "Uses the key-value store",
    version: "1.0.0",
    trigger: eventTrigger({ name: "compat.kv" }),
    run: async (payload, io, ctx) => {
      count(ctx.run.id, "executions");
      const jobBefore = (await io.store.job.get("job-get", "counter")) ?? 0;
      await io.store.job.set("job-set", "counter", jobBefore + 1);
      const mineBefore = await io.store.run.has("run-has-before", "mine");
      await io.store.run.set("run-set", "mine", { run: ctx.run.id });
      await io.store.run.set("run-set-temp", "temp", 42);
      const envValue = await io.store.env.get("env-get", payload.envKey);
      await io.store.env.set("env-set", `seen-by-${ctx.run.id}`, { at: "run" });
      await io.wait("pause", 1); // the job executes again: each store call above must not run again
      const mine = await io.store.run.get("run-get", "mine");
      const mineNow = await io.store.run.has("run-has", "mine");
      const deleted = await io.store.run.delete("run-delete", "temp");
      const deletedAgain = await io.store.run.delete("run-delete-again", "temp");
      const tempAfter = await io.store.run.get("run-get-temp", "temp");
      const step = await io.runTask("step", async () => count(ctx.run.id, "step"));
      return {
        jobBefore,
        mineBefore,
        envValue: envValue ?? null,
        mine,
        mineNow,
        deleted,
        deletedAgain,
        tempAfter: tempAfter ?? null,
        step,
        calls: calls[ctx.run.id],
      };
    },
  });

  client.defineJob({
    id: "waits-for-event",
    name: "Waits for an event",
    version: "1.0.0",
    trigger: eventTrigger({ name: "compat.wait-event" }),
    run: async (payload, io, ctx) => {
      count(ctx.run.id, "executions");
      const before = await io.runTask("before", async () => count(ctx.run.id, "before"));
      const event = await io.waitForEvent(
        "order-paid",
        { name: "compat.order-paid", filter: { orderId: [payload.orderId] } },
        { timeoutInSeconds: payload.timeoutInSeconds ?? 300 }
      );
      const after = await io.runTask("after", async () => count(ctx.run.id, "after"));
      return { event, before, after, calls: calls[ctx.run.id] };
    },
  });

  client.defineJob({
    id: "kv-slow",
    name: "Takes its time (for cancelRun)",
    version: "1.0.0",
    trigger: eventTrigger({ name: "compat.kv-slow" }),
    run: async (payload, io) => {
      await io.wait("long", payload.seconds ?? 60);
      return { done: true };
    },
  });
}

module.exports = { define };
