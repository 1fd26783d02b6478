"""Service A: the gateway in front of service B, and B's consumer."""

from service_a.app import create_app
from service_a.settings import Settings

__all__ = ["Settings", "create_app"]
