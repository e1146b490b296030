"""``WS /api/live``: frames in, tracked faces with steady labels out."""

from __future__ import annotations

from functools import partial

import logging
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from faceforge.live.pipeline import face_records
from faceforge.errors import FaceforgeError, ImageError
from faceforge.service.deps import EngineDep, SettingsDep, api_key_ok
from faceforge.service.errors import scrub_paths
from faceforge.service.inputs import infer, split
from faceforge.service.safety import IMAGE_TYPES, RequestError, sniff

router = APIRouter(prefix="/api", tags=["live"])
log = logging.getLogger("faceforge.service")

#: Close codes: refused key, bad request; 1003 (the standard "cannot accept this type of data")
#: for a text message; 1011 for an unexpected error on the server.
CLOSE_KEY, CLOSE_REQUEST, CLOSE_TEXT, CLOSE_INTERNAL = 4401, 4422, 1003, 1011
TEXT_MESSAGE = ("This WebSocket takes frames as binary messages (JPEG/PNG bytes), not text; "
                "send each frame with ws.send(blob) or ws.send(arrayBuffer).")


@router.websocket("/live")
async def live(ws: WebSocket, settings: SettingsDep, engine: EngineDep, models: str = "", attributes: str = "",
               gallery: str = "", key: str = "") -> None:
    """Send JPEG/PNG frames as binary messages; each gets a JSON reply with the tracked faces
    and their steady labels. Send the next frame after the reply (no queue builds up).

    The API key comes as ``?key=`` (browsers cannot set WebSocket headers; this is the one
    route that takes it there) or as a header; a refused key or a bad request is answered
    with ``{"error": ...}`` and a close code (4401, 4422), which a browser can read, unlike a
    refused handshake.

    A frame that is not a JPEG/PNG image under the size limit gets ``{"error": ...}`` and the
    socket stays open (the next frame is analysed as usual). A *text* message is a client
    speaking another protocol: it gets ``{"error": ...}`` and the socket is closed with code
    1003 (unsupported data). An unexpected error on the server closes it with 1011.
    """
    from faceforge.live import LiveAnalyzer
    from faceforge.sources import load_image

    await ws.accept()
    if not api_key_ok(settings.api_key, ws.headers, ws.query_params):
        await ws.send_json({"error": "This server needs an API key: add ?key=KEY to the WebSocket URL."})
        await ws.close(code=CLOSE_KEY, reason="API key required")
        return
    try:
        fm = await run_in_threadpool(engine.face_models, split(attributes), split(models), gallery or None)
        if not fm:
            raise RequestError("Nothing to show: give models, attributes or a gallery.", 422)
    except FaceforgeError as e:
        await ws.send_json({"error": scrub_paths(str(e), settings.home)})
        await ws.close(code=CLOSE_REQUEST)
        return
    la = LiveAnalyzer(fm, detector="live", workers=0)
    frame = 0
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data is None:  # a text frame
                await ws.send_json({"error": TEXT_MESSAGE})
                await ws.close(code=CLOSE_TEXT, reason="binary frames only")
                break
            t0 = time.perf_counter()
            if len(data) > settings.max_image_bytes or sniff(data) not in IMAGE_TYPES:
                await ws.send_json({"error": "frames must be JPEG/PNG images under the size limit"})
                continue
            try:
                img = await run_in_threadpool(partial(load_image, data, settings.max_pixels,
                                                      max_decode_pixels=settings.max_decode_pixels))
                faces = await run_in_threadpool(infer, engine, la.process, img, frame)
            except (ImageError, FaceforgeError) as e:
                await ws.send_json({"error": scrub_paths(str(e), settings.home)})
                continue
            await ws.send_json({"frame": frame, "width": img.shape[1], "height": img.shape[0],
                                "ms": round((time.perf_counter() - t0) * 1000, 1),
                                "faces": face_records(faces, 1)})
            frame += 1
    except WebSocketDisconnect:
        pass
    except Exception:  # a bug: log it, tell the client without details, close properly
        log.exception("live WebSocket failed")
        try:
            await ws.send_json({"error": "Internal error: the server stopped this stream (the details are "
                                         "in its log); reconnect to start again."})
            await ws.close(code=CLOSE_INTERNAL)
        except Exception:  # the socket is already gone
            pass
    finally:
        la.close()
