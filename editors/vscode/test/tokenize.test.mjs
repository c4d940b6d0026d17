// Tokenizes every spec in specs/ with vscode-textmate and the real Oniguruma (WASM), as VS Code does,
// against syntaxes/netspec.tmLanguage.json, and compares the scopes with netspec's own lexer
// (test/spec_tokens.py says what each token is: keyword, layer, number, string, comment, a block
// parameter, ...). Prints each difference and exits 1 when there is one.
//
//   node test/tokenize.test.mjs [SPEC...]        (default: ../../specs/*.net and test/fixtures/*.net)
//   NETSPEC_PYTHON=/path/to/.venv/bin/python      the Python that imports netspec (default: python3)
import { execFileSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const here = path.dirname(fileURLToPath(import.meta.url));
const extension = path.resolve(here, "..");
const specDirs = [path.resolve(extension, "..", "..", "specs"), path.join(here, "fixtures")];
// Scopes that only netspec's lexer may justify: a token with one of them must lie inside a lexer
// token whose kind expects it (no `1` of `conv1d` as a number, no `#` in a string as a comment).
const CLAIMS = [
  "comment.line", "string.quoted", "constant.numeric", "keyword.control", "keyword.other",
  "constant.language", "support.function", "variable.parameter",
];

async function loadGrammar() {
  const wasm = readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
  await oniguruma.loadWASM(wasm.buffer.slice(wasm.byteOffset, wasm.byteOffset + wasm.byteLength));
  const registry = new vsctm.Registry({
    onigLib: Promise.resolve({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (text) => new oniguruma.OnigString(text),
    }),
    loadGrammar: async (scopeName) => {
      if (scopeName !== "source.netspec") return null;
      const file = path.join(extension, "syntaxes", "netspec.tmLanguage.json");
      return vsctm.parseRawGrammar(readFileSync(file, "utf8"), file);
    },
  });
  return registry.loadGrammar("source.netspec");
}

function truth(specs) {
  const python = process.env.NETSPEC_PYTHON || "python3";
  const out = execFileSync(python, [path.join(here, "spec_tokens.py"), ...specs], {
    encoding: "utf8",
    maxBuffer: 256 * 1024 * 1024,
  });
  return JSON.parse(out);
}

/** The TextMate tokens of each line: [{start, end, scopes}]. */
function tokenize(grammar, text) {
  let stack = vsctm.INITIAL;
  return text.split("\n").map((line) => {
    const result = grammar.tokenizeLine(line, stack);
    stack = result.ruleStack;
    return result.tokens.map((t) => ({ start: t.startIndex, end: t.endIndex, scopes: t.scopes, line }));
  });
}

const has = (scopes, prefix) => scopes.some((s) => s === prefix || s.startsWith(`${prefix}.`));
const show = (scopes) => scopes.filter((s) => s !== "source.netspec").join(" ") || "(no scope)";

/** Each lexer token of a known kind must be exactly covered by TextMate tokens carrying its scope. */
function checkKnown(file, lines, tokens, scopes) {
  const failures = [];
  for (const [line, start, end, kind, text] of tokens) {
    if (kind === null) continue;
    const want = scopes[kind];
    const covering = lines[line].filter((t) => t.start < end && t.end > start);
    const wrong = covering.find((t) => !has(t.scopes, want));
    const first = covering[0];
    const last = covering[covering.length - 1];
    if (wrong || !first || first.start !== start || last.end !== end) {
      const got = wrong || first || { scopes: [], start, end };
      failures.push(
        `${file}:${line + 1}:${start + 1}: \`${text}\` is ${/^[aeiou]/.test(kind) ? "an" : "a"} ${kind} (${want}) but VS Code reads ` +
          `\`${got.line ? got.line.slice(got.start, got.end) : ""}\` as ${show(got.scopes)}`,
      );
    }
  }
  return failures;
}

/** No TextMate token may claim a lexical scope (comment, number, keyword, ...) the lexer does not give. */
function checkClaims(file, lines, tokens, scopes) {
  const failures = [];
  lines.forEach((lineTokens, line) => {
    for (const t of lineTokens) {
      const text = t.line.slice(t.start, t.end);
      const claim = CLAIMS.find((c) => has(t.scopes, c) || t.scopes.some((s) => s.startsWith(`${c}.`)));
      if (!claim || !text.trim()) continue;
      const lexed = tokens.find(([l, s, e]) => l === line && s <= t.start && t.end <= e);
      if (!lexed || lexed[3] === null || !has(t.scopes, scopes[lexed[3]])) {
        const what = lexed ? (lexed[3] ? `a ${lexed[3]}` : "unclassified") : "not one token";
        failures.push(`${file}:${line + 1}:${t.start + 1}: VS Code reads \`${text}\` as ${show(t.scopes)}, netspec's lexer: ${what}`);
      }
    }
  });
  return failures;
}

async function main() {
  const args = process.argv.slice(2);
  const specs = args.length
    ? args.map((a) => path.resolve(a))
    : specDirs.flatMap((dir) => readdirSync(dir).filter((f) => f.endsWith(".net")).sort().map((f) => path.join(dir, f)));
  if (!args.length && specs.length < 2) throw new Error(`no specs in ${specDirs[0]}`);
  const grammar = await loadGrammar();
  const { specs: lexed, scopes } = truth(specs);
  const failures = [];
  const counts = {};
  for (const spec of lexed) {
    const file = path.relative(process.cwd(), spec.path);
    const lines = tokenize(grammar, readFileSync(spec.path, "utf8"));
    failures.push(...checkKnown(file, lines, spec.tokens, scopes), ...checkClaims(file, lines, spec.tokens, scopes));
    for (const t of spec.tokens) if (t[3] !== null) counts[t[3]] = (counts[t[3]] || 0) + 1;
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  for (const f of failures) console.log(f);
  const summary = Object.entries(counts).sort().map(([k, n]) => `${k} ${n}`).join(", ");
  console.log(`${lexed.length} specs, ${total} tokens checked (${summary}): ${failures.length} failures`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(2);
});
