"""The seed's service B, as the tutorial wrote it: the bench's naive anchor (not the project's B).

Served by `uvicorn tests.bench.seed_b:app --access-log --log-level warning` (see
tests/bench/bench.py). No persistence, no middleware, routes straight on the app; its answer
to `GET /items/1` fits A's model of an item, so A can be put in front of it too.
"""

from fastapi import FastAPI, HTTPException, WebSocket, WebSocketDisconnect

app = FastAPI()


@app.get("/items/{item_id}")
async def read_item(item_id: int):  # type: ignore[no-untyped-def]  # noqa: ANN201 - the seed's code
    """Give the one item, or 404."""
    if item_id == 1:
        return {"item_id": item_id, "name": "The One Item"}
    raise HTTPException(status_code=404, detail=f"Item with ID {item_id} not found.")


@app.get("/status")
async def status():  # type: ignore[no-untyped-def]  # noqa: ANN201 - the seed's code
    """Say that the service is up."""
    return {"status": "ok"}


@app.websocket("/ws/echo")
async def websocket_echo(websocket: WebSocket) -> None:
    """Answer each text message M with `Echo: M`."""
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive_text()
            await websocket.send_text(f"Echo: {message}")
    except WebSocketDisconnect:
        pass
