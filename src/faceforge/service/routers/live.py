"""``WS /api/live``: frames in, tracked faces with steady labels out."""

from __future__ import annotations

import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from fastapi.concurrency import run_in_threadpool

from faceforge.errors import FaceforgeError, ImageError
from faceforge.service.deps import EngineDep, SettingsDep, api_key_ok
from faceforge.service.inputs import infer, split
from faceforge.service.safety import IMAGE_TYPES, RequestError, sniff

router = APIRouter(prefix="/api", tags=["live"])


@router.websocket("/live")
async def live(ws: WebSocket, settings: SettingsDep, engine: EngineDep, models: str = "", attributes: str = "",
               gallery: str = "", key: str = "") -> None:
    """Send JPEG/PNG frames as binary messages; each gets a JSON reply with the tracked faces
    and their steady labels. Send the next frame after the reply (no queue builds up).

    The API key comes as ``?key=`` (browsers cannot set WebSocket headers); a refused key or a
    bad request is answered with ``{"error": ...}`` and a close code (4401, 4422), which a
    browser can read, unlike a refused handshake.
    """
    from faceforge.live import LiveAnalyzer
    from faceforge.sources import load_image

    await ws.accept()
    if not api_key_ok(settings.api_key, ws.headers, ws.query_params):
        await ws.send_json({"error": "This server needs an API key: add ?key=KEY to the WebSocket URL."})
        await ws.close(code=4401, reason="API key required")
        return
    try:
        fm = await run_in_threadpool(engine.face_models, split(attributes), split(models), gallery or None)
        if not fm:
            raise RequestError("Nothing to show: give models, attributes or a gallery.", 422)
    except (RequestError, FaceforgeError) as e:
        await ws.send_json({"error": str(e)})
        await ws.close(code=4422)
        return
    la = LiveAnalyzer(fm, detector="live", workers=0)
    frame = 0
    try:
        while True:
            data = await ws.receive_bytes()
            t0 = time.perf_counter()
            if len(data) > settings.max_image_bytes or sniff(data) not in IMAGE_TYPES:
                await ws.send_json({"error": "frames must be JPEG/PNG images under the size limit"})
                continue
            try:
                img = await run_in_threadpool(load_image, data, settings.max_pixels)
            except ImageError as e:
                await ws.send_json({"error": str(e)})
                continue
            faces = await run_in_threadpool(infer, engine, la.process, img, frame)
            await ws.send_json({"frame": frame, "width": img.shape[1], "height": img.shape[0],
                                "ms": round((time.perf_counter() - t0) * 1000, 1),
                                "faces": faces.to_dicts(1)})
            frame += 1
    except WebSocketDisconnect:
        pass
    finally:
        la.close()
