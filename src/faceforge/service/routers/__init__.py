"""The API by area: one :class:`fastapi.APIRouter` per module, included by :func:`faceforge.service.app.create_app`.

=============  ==================================================================
module         routes
=============  ==================================================================
``health``     ``GET /api/health`` (no key needed)
``faces``      ``POST /api/detect``, ``/api/analyze``, ``/api/classify``
``models``     ``/api/models...`` (list, upload, download, delete)
``jobs``       ``POST /api/training``, ``POST /api/videos``, ``/api/jobs...``
``galleries``  ``/api/galleries...`` (people, enrol, identify, verify)
``live``       ``WS /api/live``
``web``        ``/`` and ``/static/...`` (the web page)
=============  ==================================================================
"""
