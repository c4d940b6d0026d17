// The palette commands: run the current spec in a terminal, emit it as PyTorch into an untitled
// editor, show its summary in an output channel, and show its graph (an SVG) in a webview.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const vscode = require("vscode");
const { cliCommand, runNetspec, shellLine, firstLines } = require("./cli");

const TIMEOUT_MS = 120 * 1000; // emit, summary and graph check the spec and stop; training runs in a terminal

/** @type {vscode.OutputChannel | undefined} */
let output;
/** @type {Map<string, vscode.WebviewPanel>} */
const graphs = new Map();

function channel() {
  output = output || vscode.window.createOutputChannel("netspec commands");
  return output;
}

function settings() {
  const config = vscode.workspace.getConfiguration("netspec");
  return {
    cli: cliCommand(config.get("server.command", "netspec"), config.get("server.args", ["lsp"])),
    env: { ...process.env, ...config.get("server.env", {}) },
    runArgs: config.get("run.args", []).map(String),
  };
}

/**
 * The spec a command works on: the file given (explorer menu) or the active editor's, saved first.
 * @returns {Promise<vscode.TextDocument | undefined>}
 */
async function currentSpec(uri) {
  const doc = uri instanceof vscode.Uri
    ? await vscode.workspace.openTextDocument(uri)
    : vscode.window.activeTextEditor && vscode.window.activeTextEditor.document;
  if (!doc) {
    vscode.window.showErrorMessage("netspec: open a .net spec first.");
    return undefined;
  }
  if (doc.uri.scheme !== "file") {
    vscode.window.showErrorMessage("netspec: save the spec to a file first; netspec reads it from disk.");
    return undefined;
  }
  if (doc.isDirty && !(await doc.save())) {
    vscode.window.showErrorMessage(`netspec: could not save ${path.basename(doc.fileName)}.`);
    return undefined;
  }
  return doc;
}

/** Runs `netspec <args>` for a command; shows the error (with stderr) and returns undefined on failure. */
async function netspec(title, args, cwd) {
  const { cli, env } = settings();
  let result;
  try {
    result = await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Window, title: `netspec ${title}` },
      () => runNetspec(cli, args, { cwd, env, timeoutMs: TIMEOUT_MS }),
    );
  } catch (err) {
    vscode.window.showErrorMessage(`netspec: ${err.message}`, "Open Settings").then((pick) => {
      if (pick) vscode.commands.executeCommand("workbench.action.openSettings", "netspec.server");
    });
    return undefined;
  }
  if (result.code !== 0) {
    const log = channel();
    log.appendLine(`$ ${shellLine(result.cli, args)}   (exit ${result.code})`);
    log.appendLine(result.stderr.trim() || result.stdout.trim());
    log.appendLine("");
    const shown = firstLines(result.stderr || result.stdout) || `exit status ${result.code}`;
    vscode.window.showErrorMessage(`netspec ${title} failed:\n${shown}`, "Show Output").then((pick) => {
      if (pick) log.show(true);
    });
    return undefined;
  }
  return result;
}

/** netspec: Run Current Spec — `netspec run FILE` in the "netspec" terminal, so it can be watched and stopped. */
async function runSpec(uri) {
  const doc = await currentSpec(uri);
  if (!doc) return;
  const { env, runArgs } = settings();
  const check = await netspec("--version", ["--version"], path.dirname(doc.fileName));
  if (!check) return;
  let terminal = vscode.window.terminals.find((t) => t.name === "netspec" && t.exitStatus === undefined);
  if (!terminal) {
    terminal = vscode.window.createTerminal({ name: "netspec", cwd: path.dirname(doc.fileName), env });
  }
  terminal.show(true);
  terminal.sendText(shellLine(check.cli, ["run", doc.fileName, ...runArgs]));
}

/** netspec: Emit PyTorch — the script `netspec emit FILE` prints, in a new untitled Python editor. */
async function emit(uri) {
  const doc = await currentSpec(uri);
  if (!doc) return;
  const result = await netspec("emit", ["emit", doc.fileName], path.dirname(doc.fileName));
  if (!result) return;
  const script = await vscode.workspace.openTextDocument({ language: "python", content: result.stdout });
  await vscode.window.showTextDocument(script, { preview: false, viewColumn: vscode.ViewColumn.Beside });
}

/** netspec: Show Summary — `netspec summary FILE` (each layer's shape and parameters) in an output channel. */
async function summary(uri) {
  const doc = await currentSpec(uri);
  if (!doc) return;
  const result = await netspec("summary", ["summary", doc.fileName], path.dirname(doc.fileName));
  if (!result) return;
  const log = channel();
  log.clear();
  log.appendLine(`$ ${shellLine(result.cli, ["summary", doc.fileName])}`);
  log.append(result.stdout);
  log.show(true);
}

/** netspec: Show Graph — `netspec graph FILE -o TMP/NAME.svg`, shown in a webview beside the spec. */
async function graph(uri) {
  const doc = await currentSpec(uri);
  if (!doc) return;
  const name = path.basename(doc.fileName).replace(/\.net$/, "");
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "netspec-graph-"));
  const svgPath = path.join(dir, `${name}.svg`);
  try {
    const result = await netspec("graph", ["graph", doc.fileName, "-o", svgPath], path.dirname(doc.fileName));
    if (!result) return;
    showSvg(doc.fileName, name, fs.readFileSync(svgPath));
  } catch (err) {
    vscode.window.showErrorMessage(`netspec graph: could not read ${svgPath} (${err.message}).`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function showSvg(key, name, svg) {
  let panel = graphs.get(key);
  if (!panel) {
    panel = vscode.window.createWebviewPanel("netspec.graph", `Graph: ${name}`, vscode.ViewColumn.Beside, {
      enableScripts: false,
    });
    panel.onDidDispose(() => graphs.delete(key));
    graphs.set(key, panel);
  }
  panel.webview.html = graphHtml(name, svg);
  panel.reveal(vscode.ViewColumn.Beside, true);
}

/** The SVG as an <img> (a data URI: nothing in it can run), on white, as Graphviz draws it. */
function graphHtml(name, svg) {
  const src = `data:image/svg+xml;base64,${Buffer.from(svg).toString("base64")}`;
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline';">
<style>body { background: #fff; margin: 0; padding: 12px; } img { max-width: none; }</style>
<title>${name.replace(/[<>&"]/g, "")}</title></head>
<body><img alt="the network of ${name.replace(/[<>&"]/g, "")}" src="${src}"></body></html>`;
}

/** Registers the commands; each is a disposable in `context.subscriptions`. */
function register(context) {
  const commands = { "netspec.run": runSpec, "netspec.emit": emit, "netspec.summary": summary, "netspec.graph": graph };
  for (const [id, handler] of Object.entries(commands)) {
    context.subscriptions.push(vscode.commands.registerCommand(id, handler));
  }
  context.subscriptions.push({ dispose: () => output && output.dispose() });
}

module.exports = { register, graphHtml };
