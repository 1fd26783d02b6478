"""Service B: the provider of the pair, an HTTP items API and WebSocket endpoints."""

from service_b.app import create_app
from service_b.settings import Settings

__all__ = ["Settings", "create_app"]
