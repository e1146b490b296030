"""The speed / accuracy presets every stage understands: ``"fast"`` (the default) and ``"accurate"``.

``"accurate"`` trades time for accuracy with test-time augmentation and calibration on top of the
same weights (issue 19): each stage says in its own docstring what the preset changes there and
what it costs, with the measurement in docs/benchmarks.md. One switch: the CLI's ``--accurate``,
the API's ``quality`` field and the web page's checkbox all end here.
"""

from __future__ import annotations

from faceforge.errors import ParameterError

#: The presets, default first.
QUALITIES = ("fast", "accurate")
DEFAULT_QUALITY = "fast"


def check_quality(quality: object) -> str:
    """``quality`` if it names a preset, else a :class:`~faceforge.errors.ParameterError` naming the choices."""
    if quality not in QUALITIES:
        raise ParameterError(f"quality must be one of {', '.join(map(repr, QUALITIES))}, got {quality!r}")
    return str(quality)
