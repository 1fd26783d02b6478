"""B's version, in its OpenAPI and AsyncAPI documents alike (a module of its own: no cycle)."""

VERSION = "1.0.0"
