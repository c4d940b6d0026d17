// netspec for VS Code: starts `netspec lsp` (stdio) and connects it to `.net` files, and adds the
// palette commands (src/commands.js). Highlighting comes from syntaxes/netspec.tmLanguage.json and
// works without the server. `npm run build` bundles this file and its imports into dist/extension.js.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");
const commands = require("./commands");

/** @type {LanguageClient | undefined} */
let client;

function serverOptions() {
  const config = vscode.workspace.getConfiguration("netspec");
  const command = config.get("server.command", "netspec");
  const args = config.get("server.args", ["lsp"]);
  const env = { ...process.env, ...config.get("server.env", {}) };
  // No `transport` field: stdio is the default, and it adds no `--stdio` argument.
  return { command, args, options: { env } };
}

async function start(context) {
  client = new LanguageClient(
    "netspec",
    "netspec",
    serverOptions(),
    {
      documentSelector: [
        { scheme: "file", language: "netspec" },
        { scheme: "untitled", language: "netspec" },
      ],
      outputChannelName: "netspec",
    },
  );
  try {
    await client.start();
  } catch (err) {
    const command = vscode.workspace.getConfiguration("netspec").get("server.command", "netspec");
    vscode.window.showErrorMessage(
      `netspec: could not start \`${command} lsp\` (${err}). Install netspec (pip install netspec) ` +
        "or set netspec.server.command to it (or to a Python interpreter, with netspec.server.args " +
        '["-m", "netspec", "lsp"]).',
    );
  }
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

async function activate(context) {
  commands.register(context);
  context.subscriptions.push(
    vscode.commands.registerCommand("netspec.restartServer", async () => {
      if (client) {
        await client.stop();
      }
      await start(context);
    }),
  );
  await start(context);
}

async function deactivate() {
  if (client) {
    await client.stop();
  }
}

module.exports = { activate, deactivate };
