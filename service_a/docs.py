"""A's documentation: its `/docs` description, which links both services' pages.

The pages themselves are FastAPIOffline's (see `create_app`): Swagger UI with its assets served
by A, so that `/docs` works without internet access.
"""

from __future__ import annotations

from service_a.settings import Settings

DOCS_URL = "/docs"


def docs_description(settings: Settings) -> str:
    """Give A's OpenAPI description: what A does, and where each service's pages are."""
    service_b = settings.service_b_urls[0].rstrip("/")
    return (
        "The gateway: forwards the items API to service B, relays its WebSockets, "
        "and reports B's health.\n\n"
        "Documentation pages, served by the services themselves (no internet needed):\n\n"
        f"- service A's HTTP API: [{DOCS_URL}]({DOCS_URL}) (this page)\n"
        f"- service B's HTTP API: [{service_b}/docs]({service_b}/docs)\n"
        f"- service B's WebSocket API (AsyncAPI), which A relays at the same paths: "
        f"[{service_b}/asyncapi]({service_b}/asyncapi)\n"
    )
