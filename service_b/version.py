"""B's version, in its OpenAPI and AsyncAPI documents alike (a module of its own: no cycle)."""

from importlib.metadata import version

#: The package's version (pyproject.toml), published in B's documents.
VERSION = version("service-pair")
