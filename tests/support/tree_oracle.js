#!/usr/bin/env node
// Tree oracle: the official client's TreeRenderer behind a line-oriented JSON protocol.
//
// stdin, one JSON command per line:
//   {"session": id, "op": "apply", "update": {...}}  -> {"html": "..."}
//   {"session": id, "op": "reset"}                   -> {"ok": true}
//   {"session": id, "op": "close"}                   -> {"ok": true}
// Any failure (bad JSON, unknown op, an exception thrown by the renderer) -> {"error": "message"}.
// Exactly one line is written per command line, in order.
"use strict";

const path = require("path");
const readline = require("readline");

const rendererPath = path.resolve(
  __dirname,
  "..",
  "..",
  "node_modules",
  "@livetemplate",
  "client",
  "dist",
  "state",
  "tree-renderer.js",
);

let TreeRenderer;
try {
  ({ TreeRenderer } = require(rendererPath));
} catch (err) {
  process.stderr.write(
    `tree_oracle: cannot load ${rendererPath} (${err && err.message}); run \`npm ci\` in the repository root\n`,
  );
  process.exit(3);
}

const silentLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  isDebugEnabled() {
    return false;
  },
};

const sessions = new Map();

function rendererFor(id) {
  let renderer = sessions.get(id);
  if (renderer === undefined) {
    renderer = new TreeRenderer(silentLogger);
    sessions.set(id, renderer);
  }
  return renderer;
}

function handle(line) {
  const cmd = JSON.parse(line);
  if (cmd === null || typeof cmd !== "object" || Array.isArray(cmd)) {
    throw new Error("command must be a JSON object");
  }
  const id = String(cmd.session);
  switch (cmd.op) {
    case "apply":
      return { html: rendererFor(id).applyUpdate(cmd.update).html };
    case "reset":
      rendererFor(id).reset();
      return { ok: true };
    case "close":
      sessions.delete(id);
      return { ok: true };
    default:
      throw new Error(`unknown op ${JSON.stringify(cmd.op)}`);
  }
}

const rl = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", (line) => {
  if (line.trim() === "") {
    return;
  }
  let reply;
  try {
    reply = handle(line);
  } catch (err) {
    reply = { error: String((err && err.message) || err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
});
rl.on("close", () => process.exit(0));
