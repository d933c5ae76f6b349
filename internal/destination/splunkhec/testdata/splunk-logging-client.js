// Sends events to an HTTP Event Collector with npm's splunk-logging (Splunk's own JavaScript
// HEC client) and prints, as one JSON object, what HEC answered to each send.
//
// Environment: HEC_URL (the HEC base URL), HEC_TOKEN (a token that may write to the index
// "audit" but not "forbidden"), HEC_ACK_TOKEN (a token with indexer acknowledgement),
// HEC_BAD_TOKEN (a token HEC does not know). NODE_PATH must find splunk-logging.
"use strict";

const SplunkLogger = require("splunk-logging").Logger;
const version = require("splunk-logging/package.json").version;

const url = process.env.HEC_URL;
const base = 1732626000123; // 2024-11-26T13:00:00.123Z

function logger(config) {
  const l = new SplunkLogger(Object.assign({ url }, config));
  l.error = function () {}; // HEC's refusals are reported in the output instead
  return l;
}

// send resolves with what HEC answered. Only a send that flushes calls its callback.
function send(l, payload) {
  return new Promise((resolve) => {
    l.send(payload, (err, resp, body) => {
      resolve({
        err: err ? String(err) : null,
        status: resp ? resp.statusCode : 0,
        code: body && typeof body === "object" ? body.code : null,
        text: body && typeof body === "object" ? body.text : String(body),
      });
    });
  });
}

async function main() {
  const out = { version };

  // One event per request, with every metadata field.
  const single = logger({ token: process.env.HEC_TOKEN });
  out.single = [];
  for (const n of [1, 2]) {
    out.single.push(await send(single, {
      message: { n, kind: "single" },
      severity: "info",
      metadata: {
        time: new Date(base + n * 1000),
        host: "node-host",
        source: "splunk-logging",
        sourcetype: "node:test",
        index: "audit",
      },
    }));
  }

  // Three events in one request: splunk-logging concatenates their JSON objects.
  const batched = logger({ token: process.env.HEC_TOKEN, maxBatchCount: 3 });
  batched.send({ message: { n: 1, kind: "batch" } });
  batched.send({ message: { n: 2, kind: "batch" } });
  out.batch = await send(batched, { message: { n: 3, kind: "batch" } });

  // Refusals.
  out.badToken = await send(logger({ token: process.env.HEC_BAD_TOKEN }), { message: "x" });
  out.forbiddenIndex = await send(single, { message: "x", metadata: { index: "forbidden" } });
  // splunk-logging sends no channel, so a token with indexer acknowledgement refuses it.
  out.ackWithoutChannel = await send(logger({ token: process.env.HEC_ACK_TOKEN }), { message: "x" });

  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});
