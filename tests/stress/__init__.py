"""Heavy probes against the services as real processes, run by `nox -s stress`."""
