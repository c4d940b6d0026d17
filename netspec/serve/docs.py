"""`/docs`: the OpenAPI schema as one plain HTML page (FastAPI's own pulls Swagger UI from a CDN).

Each endpoint with its method, summary and description, the media types of its request body with
their fields, and its responses; then every schema with its fields. Everything from the schema is
escaped; the page loads nothing.
"""

from __future__ import annotations

import html
import json
from typing import Any

STYLE = """
body{font:15px/1.45 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#111}
h2{border-bottom:1px solid #ccc;padding-bottom:.2rem;margin-top:2rem}
.method{display:inline-block;min-width:3.5rem;font-weight:700;color:#fff;background:#555;padding:0 .4rem;
border-radius:3px;text-align:center}
.post{background:#1b6e3a}.get{background:#1d4f91}
table{border-collapse:collapse;margin:.4rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;
vertical-align:top}code,pre{font-family:ui-monospace,monospace;font-size:13px}pre{background:#f4f4f4;
padding:.5rem;overflow:auto}
"""


def render(schema: dict[str, Any]) -> str:
    info = schema.get("info", {})
    title = _e(info.get("title", "API"))
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>",
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{STYLE}</style></head><body>",
        f"<h1>{title}</h1><p>{_e(info.get('description', ''))}</p>",
        "<p>The schema: <a href='/openapi.json'>/openapi.json</a>. The web page: <a href='/'>/</a>.</p>",
        "<h2>Endpoints</h2>",
    ]
    for path, methods in schema.get("paths", {}).items():
        parts += [_operation(path, method, op) for method, op in methods.items()]
    parts.append("<h2>Schemas</h2>")
    for name, body in schema.get("components", {}).get("schemas", {}).items():
        parts.append(f"<h3 id='{_e(name)}'>{_e(name)}</h3>{_fields(body)}")
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    head = f"<h3><span class='method {_e(method)}'>{_e(method.upper())}</span> <code>{_e(path)}</code></h3>"
    text = f"<p><b>{_e(op.get('summary', ''))}</b></p><p>{_e(op.get('description', ''))}</p>"
    return head + text + _parameters(op) + _request(op) + _responses(op)


def _parameters(op: dict[str, Any]) -> str:
    params = op.get("parameters", [])
    if not params:
        return ""
    rows = "".join(
        f"<tr><td><code>{_e(p.get('name'))}</code></td><td>{_e(p.get('in'))}</td><td>{_type(p.get('schema', {}))}"
        f"</td><td>{_e(p.get('description', ''))}</td></tr>"
        for p in params
    )
    return f"<p>Parameters:</p><table><tr><th>name</th><th>in</th><th>type</th><th>meaning</th></tr>{rows}</table>"


def _request(op: dict[str, Any]) -> str:
    body = op.get("requestBody")
    if not body:
        return ""
    out = []
    for media, content in body.get("content", {}).items():
        schema = content.get("schema", {})
        inline = _fields(schema) if "properties" in schema else ""
        out.append(f"<p>Request body, <code>{_e(media)}</code>: {_type(schema)}</p>{inline}")
    return "".join(out)


def _responses(op: dict[str, Any]) -> str:
    rows = []
    for code, response in op.get("responses", {}).items():
        media = response.get("content", {})
        shown = ", ".join(f"<code>{_e(m)}</code> {_type(c.get('schema', {}))}" for m, c in media.items())
        rows.append(f"<tr><td>{_e(code)}</td><td>{_e(response.get('description', ''))}</td><td>{shown}</td></tr>")
    return f"<table><tr><th>status</th><th>meaning</th><th>body</th></tr>{''.join(rows)}</table>"


def _fields(schema: dict[str, Any]) -> str:
    props = schema.get("properties")
    text = f"<p>{_e(schema.get('description', ''))}</p>"
    if not props:
        return text + f"<pre>{_e(json.dumps(schema, indent=1))}</pre>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{_e(name)}</code></td><td>{_type(p)}</td><td>{'yes' if name in required else 'no'}</td>"
        f"<td>{_e(p.get('description', ''))}{_default(p)}</td></tr>"
        for name, p in props.items()
    )
    return text + f"<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>{rows}</table>"


def _default(p: dict[str, Any]) -> str:
    return f" (default <code>{_e(json.dumps(p['default']))}</code>)" if "default" in p else ""


def _type(s: dict[str, Any]) -> str:
    """A schema in a few words: a link for a reference, `list of ...`, `a or b`, the type and its bounds."""
    if "$ref" in s:
        name = s["$ref"].rsplit("/", 1)[-1]
        return f"<a href='#{_e(name)}'>{_e(name)}</a>"
    if "anyOf" in s:
        return " or ".join(_type(x) for x in s["anyOf"])
    if s.get("type") == "array":
        return "list of " + _type(s.get("items", {}))
    bounds = [f"{k} {s[k]}" for k in ("minimum", "maximum", "exclusiveMinimum", "maxLength", "format") if k in s]
    kind = _e(s.get("type", "any"))
    return f"{kind} ({_e(', '.join(bounds))})" if bounds else kind


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)
