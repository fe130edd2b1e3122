"""Entry point of the one-file build (PyInstaller runs this file as ``__main__``)."""

import sys

from agent.cli import main

sys.exit(main())
