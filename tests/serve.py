"""Run `python -m MODULE ARGS` on a listening socket the parent bound: no free-port race.

`tests.live.run_service` binds the service's socket itself and hands it down (`--fd N`), so
no other process can take the port between choosing it and the server binding it (what
asking for a free port, closing it and passing the number on allows). The module is run
as `python -m MODULE` would run it; only `uvicorn.Server.run`, which every uvicorn entry
point ends in (`uvicorn.run`, uvicorn's own command line), is given the inherited socket
instead of binding `--host`/`--port` itself.

    python -m tests.serve --fd N MODULE [ARGS...]
"""

from __future__ import annotations

import argparse
import runpy
import socket
import sys

import uvicorn


def main(argv: list[str] | None = None) -> None:
    """Serve MODULE on the inherited listening socket `--fd`."""
    parser = argparse.ArgumentParser(prog="python -m tests.serve")
    parser.add_argument("--fd", type=int, required=True, help="an inherited listening socket")
    parser.add_argument("module", help="what `python -m` would run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the module's own arguments")
    options = parser.parse_args(argv)
    listener = socket.socket(fileno=options.fd)
    run = uvicorn.Server.run

    def run_on_listener(server: uvicorn.Server, sockets: list[socket.socket] | None = None) -> None:
        run(server, sockets=[listener] if sockets is None else sockets)

    uvicorn.Server.run = run_on_listener  # type: ignore[method-assign,assignment]
    sys.argv = [options.module, *options.args]
    runpy.run_module(options.module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
