"""``tests/support/instant_agent.py`` run as a script, so that ``PYTHONPATH`` decides which
checkout's ``agent`` package runs (``bench/kubelet_bench.py --baseline DIR`` compares two):
``PYTHONPATH=<checkout>:<this repo> python bench/instant_agent.py <serve flags>``.
"""

from __future__ import annotations

import sys

from tests.support.instant_agent import main

if __name__ == "__main__":
    sys.exit(main())
