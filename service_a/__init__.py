"""Service A: the gateway in front of service B, and B's consumer."""
