// How the extension runs the netspec command line: the executable and its arguments come from the
// same settings that start the language server (`netspec.server.command`, `netspec.server.args`).
// No `vscode` import here, so the test scripts can load this module in plain node.
"use strict";

const { execFile } = require("child_process");

const MAX_OUTPUT = 64 * 1024 * 1024; // bytes of stdout kept (an emitted script is a few dozen kB)

/**
 * The command line that runs `netspec <subcommand>`, from the server settings: `netspec` with
 * `["lsp"]` gives `netspec`; a Python interpreter with `["-m", "netspec", "lsp"]` gives
 * `python -m netspec`. The arguments after `lsp` (`--max-memory 8GiB`) belong to the server only.
 * @param {string} command
 * @param {string[]} serverArgs
 * @returns {{ command: string, prefix: string[] }}
 */
function cliCommand(command, serverArgs) {
  const args = Array.isArray(serverArgs) ? serverArgs.map(String) : [];
  const at = args.lastIndexOf("lsp");
  return { command: command || "netspec", prefix: at >= 0 ? args.slice(0, at) : [] };
}

/** The fallback when the configured `netspec` is not on the PATH: the Python that has netspec. */
function fallbackCommand() {
  return { command: process.platform === "win32" ? "python" : "python3", prefix: ["-m", "netspec"] };
}

/**
 * Runs `command prefix... args...` without a shell and resolves with its exit code, stdout and
 * stderr (never rejects on a non-zero exit; rejects when the program cannot be started).
 * @returns {Promise<{ code: number, stdout: string, stderr: string }>}
 */
function run(cli, args, options = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cli.command,
      [...cli.prefix, ...args],
      { cwd: options.cwd, env: options.env, maxBuffer: MAX_OUTPUT, timeout: options.timeoutMs || 0, windowsHide: true },
      (err, stdout, stderr) => {
        if (!err || typeof err.code === "number") {
          resolve({ code: err ? err.code : 0, stdout: String(stdout), stderr: String(stderr) });
        } else if (err.killed || err.signal) {
          const why = options.timeoutMs ? `stopped after ${Math.round(options.timeoutMs / 1000)} s` : "stopped";
          resolve({ code: -1, stdout: String(stdout), stderr: `${String(stderr)}\n${why}`.trim() });
        } else if (err.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
          resolve({ code: -1, stdout: "", stderr: `the output was larger than ${MAX_OUTPUT} bytes` });
        } else {
          reject(err); // ENOENT, EACCES: the program could not be started
        }
      },
    );
    if (options.onSpawn) options.onSpawn(child);
  });
}

/**
 * `run` with the configured command, and `python3 -m netspec` when the configured one is the
 * default `netspec` and is not installed on the PATH. Resolves with the result and the command used.
 */
async function runNetspec(cli, args, options = {}) {
  try {
    return { ...(await run(cli, args, options)), cli };
  } catch (err) {
    if (err && err.code === "ENOENT" && cli.command === "netspec") {
      const fallback = fallbackCommand();
      let result;
      try {
        result = await run(fallback, args, options);
      } catch (_) {
        throw notFound(cli, err);
      }
      if (/No module named netspec/.test(result.stderr)) throw notFound(cli, err);
      return { ...result, cli: fallback };
    }
    throw notFound(cli, err);
  }
}

function notFound(cli, err) {
  const e = new Error(
    `could not run \`${cli.command}\` (${err && err.code ? err.code : err}). Install netspec ` +
      '(pip install netspec) or set "netspec.server.command" to its path, or to a Python interpreter ' +
      'with "netspec.server.args": ["-m", "netspec", "lsp"].',
  );
  e.code = "NOTFOUND";
  return e;
}

/** One argument quoted for the shell of a VS Code terminal: POSIX shells, or PowerShell on Windows. */
function shellQuote(arg, platform = process.platform) {
  const s = String(arg);
  if (/^[A-Za-z0-9_@%+=:,./\\-]+$/.test(s)) return s;
  if (platform === "win32") return `'${s.replace(/'/g, "''")}'`;
  return `'${s.replace(/'/g, "'\\''")}'`;
}

/** The line typed into a terminal to run `cli args`: PowerShell needs `&` before a quoted program. */
function shellLine(cli, args, platform = process.platform) {
  const words = [cli.command, ...cli.prefix, ...args].map((a) => shellQuote(a, platform));
  return platform === "win32" && words[0].startsWith("'") ? `& ${words.join(" ")}` : words.join(" ");
}

/** The first lines of stderr, for an error message (the whole text goes to the output channel). */
function firstLines(text, count = 6) {
  const lines = String(text).trim().split(/\r?\n/);
  return lines.length > count ? [...lines.slice(0, count), "..."].join("\n") : lines.join("\n");
}

module.exports = { cliCommand, fallbackCommand, run, runNetspec, shellQuote, shellLine, firstLines };
