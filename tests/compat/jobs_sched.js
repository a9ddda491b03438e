// Jobs of the scheduling part (tests/compat/test_sched.py): scheduled jobs, a DynamicSchedule, job deletion and
// queues. `define(client, { count })` adds them to the server's TriggerClient.
//
// The scheduled jobs start disabled, so the endpoint every other test registers declares no schedule (no tick
// row, no run of its own in their outbox): a test turns one on with the `sched-toggle` job, indexes the
// endpoint again, and turns it off at its end.
"use strict";

const { cronTrigger, intervalTrigger, eventTrigger, DynamicSchedule } = require("@trigger.dev/sdk");

function define(client, { count }) {
  const enabled = { "sched-cron": false, "sched-interval": false, "sched-deletable": true };

  // What a tick's run saw: the ScheduledPayload (ts, lastTimestamp: Dates after the SDK parsed them).
  function scheduled(payload, ctx) {
    return {
      ts: payload.ts.toISOString(),
      lastTimestamp: payload.lastTimestamp ? payload.lastTimestamp.toISOString() : null,
      eventId: ctx.event.id,
      source: ctx.source ?? null,
      executions: count(ctx.run.id, "executions"),
    };
  }

  client.defineJob({
    id: "sched-cron",
    name: "Every minute (cron)",
    version: "1.0.0",
    get enabled() {
      return enabled["sched-cron"];
    },
    trigger: cronTrigger({ cron: "* * * * *" }),
    run: async (payload, io, ctx) => scheduled(payload, ctx),
  });

  client.defineJob({
    id: "sched-interval",
    name: "Every minute (interval)",
    version: "1.0.0",
    get enabled() {
      return enabled["sched-interval"];
    },
    trigger: intervalTrigger({ seconds: 60 }),
    run: async (payload, io, ctx) => scheduled(payload, ctx),
  });

  const dynamic = new DynamicSchedule(client, { id: "sched-dynamic-schedule" });
  // Defined with no job attached: the index names it all the same, and it takes registrations.
  new DynamicSchedule(client, { id: "sched-lonely-schedule" });

  client.defineJob({
    id: "sched-dynamic",
    name: "Runs on the DynamicSchedule's registrations",
    version: "1.0.0",
    trigger: dynamic,
    run: async (payload, io, ctx) => scheduled(payload, ctx),
  });

  // Registers (or unregisters) a schedule on the DynamicSchedule from inside a run, as a v2 job would.
  client.defineJob({
    id: "sched-register",
    name: "Registers a dynamic schedule",
    version: "1.0.0",
    trigger: eventTrigger({ name: "sched.register" }),
    run: async (payload, io) => {
      if (payload.legacy) {
        // The deprecated io helpers, which call DynamicSchedule.register / unregister in a task of their own.
        if (payload.unregister) {
          await io.unregisterCron("legacy-unregister", dynamic, payload.key);
          return { unregistered: true };
        }
        return { registration: await io.registerCron("legacy-register", dynamic, payload.key, { cron: "0 3 * * *" }) };
      }
      if (payload.unregister) {
        return { unregistered: await dynamic.unregister(payload.key) };
      }
      const registration = await dynamic.register(payload.key, {
        type: "interval",
        options: { seconds: payload.seconds ?? 60 },
        metadata: { user: payload.key },
      });
      return { registration };
    },
  });

  client.defineJob({
    id: "sched-toggle",
    name: "Turns the scheduling jobs on and off",
    version: "1.0.0",
    trigger: eventTrigger({ name: "sched.toggle" }),
    run: async (payload) => {
      enabled[payload.job] = payload.enabled;
      return { ...enabled };
    },
  });

  client.defineJob({
    id: "sched-deletable",
    name: "Deleted and brought back",
    version: "1.0.0",
    get enabled() {
      return enabled["sched-deletable"];
    },
    trigger: eventTrigger({ name: "sched.deletable" }),
    run: async () => ({ ran: true }),
  });

  // Executing now per queue, and the most seen at once.
  const active = {};
  const peak = {};
  client.defineJob({
    id: "sched-pooled",
    name: "Runs in the sched-pool queue",
    version: "1.0.0",
    concurrencyLimit: { id: "sched-pool", limit: 1 },
    trigger: eventTrigger({ name: "sched.pooled" }),
    run: async (payload) => {
      const key = payload.pool ?? "sched-pool";
      active[key] = (active[key] ?? 0) + 1;
      peak[key] = Math.max(peak[key] ?? 0, active[key]);
      await new Promise((resolve) => setTimeout(resolve, payload.ms ?? 1000));
      active[key] -= 1;
      return { peak: peak[key] };
    },
  });
}

module.exports = { define };
