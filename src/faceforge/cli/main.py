"""The ``faceforge`` command line: a thin layer over the Python API.

One module per command group, each a few functions over the library:

* :mod:`~faceforge.cli.faces`: ``detect``, ``embed``, ``verify``
* :mod:`~faceforge.cli.train`: ``train``, ``classify``, ``evaluate``
* :mod:`~faceforge.cli.analyze`: ``analyze``, ``live``
* :mod:`~faceforge.cli.bootstrap`: ``cluster``, ``autolabel``, ``distil``
* :mod:`~faceforge.cli.collect`: ``ingest``, ``watch``
* :mod:`~faceforge.cli.versions`: ``retrain``, ``models history/promote/rollback`` (``models`` alone: the table)
* :mod:`~faceforge.cli.gallery`: ``gallery enrol/list/identify/verify/remove/history``
* :mod:`~faceforge.cli.serve`: ``models`` (the table), ``serve``, ``demo``

:mod:`~faceforge.cli.app` holds the Typer app, the consoles and the one error handler
(a :class:`~faceforge.errors.FaceforgeError` prints ``error: ...`` and exits with 2; Ctrl+C exits with 130).
This module assembles them, in the order ``faceforge --help`` lists them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from faceforge.cli import analyze, bootstrap, collect, export, faces, gallery, serve, train, versions
from faceforge.cli.app import app, install_signal_handlers

__all__ = ["app", "main"]


def _assemble() -> None:
    command: Callable[..., Any]
    if app.registered_commands:  # once, even where this module is loaded twice (as __main__ and by name)
        return
    app.add_typer(versions.models_app, name="models")  # alone: the table of serve.models
    for command in (faces.detect, faces.embed, faces.verify, train.train, train.classify,
                    train.evaluate, analyze.analyze, analyze.live, bootstrap.cluster, bootstrap.autolabel,
                    bootstrap.distil, collect.ingest, versions.retrain, collect.watch, export.export):
        app.command()(command)
    app.add_typer(gallery.gallery_app, name="gallery")
    for command in (serve.serve, serve.demo):
        app.command()(command)


_assemble()


def main() -> None:
    """Entry point of the ``faceforge`` command."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    install_signal_handlers()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
