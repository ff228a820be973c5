"""The ``akool-async`` command line (also ``python -m akool_async``).

Subcommands: ``models``, ``credits``, ``create``, ``wait``, ``download``, ``bulk`` and
``fake-server``. Each one takes ``--api-key`` (default ``$AKOOL_API_KEY``; never printed) after
its own name, and each one but ``fake-server`` also ``--base-url``. Every error family has its
own exit code (``EXIT_CODES``), listed in ``akool-async --help``.

Modules: ``_main`` (entry point), ``_parser`` (argparse), ``_exit_codes``, ``_output``
(stdout/stderr), ``_connection`` (the client built from the options), ``_reporters`` (bulk
progress), and one per command family: ``_info`` (models, credits), ``_videos`` (create, wait,
download), ``_bulk`` (bulk), ``_fake_server`` (fake-server).
"""

from ._exit_codes import EXIT_CODES, exit_code_for
from ._main import main
from ._parser import build_parser

__all__ = ["EXIT_CODES", "build_parser", "exit_code_for", "main"]
