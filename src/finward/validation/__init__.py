"""Positive security model building blocks (issue 6): parser hardening, formats, and
request validation compiled from OpenAPI specs (``schema``: Schema Object -> compiled
JSON Schema 2020-12 on jsonschema-rs; ``request``: per-operation parameter and body
validators).

Sans-IO: nothing here performs I/O. Not wired into the pipeline yet.
"""
