"""faceforge as a service: an HTTP API and a web page over the Python API.

Run it with ``faceforge serve`` (or :func:`serve`); embed it with :func:`create_app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from faceforge.errors import ParameterError


def create_app(settings: Any = None, **kwargs: Any) -> Any:
    """The FastAPI app; see :class:`faceforge.service.settings.Settings` for ``kwargs``."""
    from faceforge.service.app import create_app as _create

    return _create(settings, **kwargs)


def serve(host: str = "127.0.0.1", port: int = 8000, *, home: str | os.PathLike | None = None,
          api_key: str | None = None, log_level: str = "info", on_ready: Any = None, **settings: Any) -> None:
    """Run the service with uvicorn until interrupted.

    Args:
        host: address to bind; anything but a loopback address needs ``api_key``.
        port: TCP port (0: any free port).
        home: data directory (default ``$FACEFORGE_HOME`` or ``~/.faceforge``).
        api_key: required on API requests when set (default ``$FACEFORGE_API_KEY``).
        on_ready: called with the URL once the server listens.
        **settings: other :class:`~faceforge.service.settings.Settings` fields.

    Raises:
        ParameterError: a non-loopback host without an API key.
    """
    import uvicorn

    from faceforge.service.safety import is_loopback_host
    from faceforge.service.settings import make_settings
    from faceforge.service.state import default_home

    api_key = api_key or os.environ.get("FACEFORGE_API_KEY") or None
    if not is_loopback_host(host) and not api_key:
        raise ParameterError(f"Serving on {host!r} makes the API reachable from other machines: set an API key "
                             f"(FACEFORGE_API_KEY in the environment, or --api-key), or bind to 127.0.0.1.")
    s = make_settings(home=Path(home) if home else default_home(), api_key=api_key, **settings)
    app = create_app(s)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws_max_size=int(s.max_image_bytes) + 1024)

    class _AnnouncingServer(uvicorn.Server):
        """Calls ``on_ready`` with the URL of the first socket once the server listens."""

        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            for srv in self.servers:
                for sock in srv.sockets:
                    h, p = sock.getsockname()[:2]
                    shown = "127.0.0.1" if h in ("0.0.0.0", "::") else h
                    on_ready(f"http://{shown}:{p}/")
                    return

    server = uvicorn.Server(config) if on_ready is None else _AnnouncingServer(config)
    server.run()


__all__ = ["create_app", "serve"]
