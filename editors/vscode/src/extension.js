// netspec for VS Code: starts `netspec lsp` (stdio) and connects it to `.net` files.
// Highlighting comes from syntaxes/netspec.tmLanguage.json and works without the server.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

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
      `netspec: could not start \`${command} lsp\` (${err}). Install netspec with pygls ` +
        "(pip install 'netspec[dev]' or pip install pygls) or set netspec.server.command.",
    );
  }
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

async function activate(context) {
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
