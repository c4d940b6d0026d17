"""`netspec serve`: a trained network as an HTTP service (FastAPI on uvicorn).

`model` turns requests into network inputs and outputs into answers (no web framework in it),
`inputs` decodes and checks what a client sends (JSON arrays, images, text), `batcher` gathers
concurrent requests into one forward pass, `app` is the FastAPI application (routes, limits, the
one error format), `docs` renders the OpenAPI schema as a page without any CDN, `server` binds
the socket and runs uvicorn, and `page.html` is the web page served at `/`.
Only the `serve` command imports this package: fastapi and uvicorn are optional dependencies.
"""
