// Jobs of the dashboard's browser tests (tests/browser/): one with example payloads, and one whose task names,
// status labels and output carry markup that must render as text.
"use strict";

const { eventTrigger } = require("@trigger.dev/sdk");

function define(client) {
  client.defineJob({
    id: "hello-world",
    name: "Hello world",
    version: "1.0.0",
    trigger: eventTrigger({
      name: "dash.hello",
      examples: [
        { id: "greet", name: "Greet someone", payload: { name: "Ada" } },
        { id: "empty", name: "Nobody", payload: {} },
      ],
    }),
    run: async (payload, io) => {
      const greeting = await io.runTask("greet", async () => {
        const inner = await io.runTask("compose", async () => `Hello, ${payload.name ?? "world"}!`);
        return { greeting: inner };
      });
      // A test that watches the run page fill in live asks for a pause, so the page is there before the end.
      if (payload.waitSeconds) await io.wait("pause", payload.waitSeconds);
      const status = await io.createStatus("progress", { label: "Greeted", state: "success", data: { n: 1 } });
      return { ...greeting, status: status.key };
    },
  });

  client.defineJob({
    id: "dash-markup",
    name: "Markup everywhere",
    version: "1.0.0",
    trigger: eventTrigger({ name: "dash.markup" }),
    run: async (payload, io) => {
      const name = payload.taskName ?? "<script>window.__xss = 1</script>";
      await io.runTask(name, async () => ({ html: payload.html ?? "<img src=x onerror=window.__xss=2>" }));
      await io.createStatus("markup", { label: "<img src=x onerror=window.__xss=3>", state: "success" });
      return { echo: payload, html: "<img src=x onerror=window.__xss=4>" };
    },
  });
}

module.exports = { define };
