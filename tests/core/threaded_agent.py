"""A resource agent whose module starts a thread when it is imported (what docs/writing-plugins.md asks plugins
not to do): an agent host that imported it must not fork. Named through ``$OMHA_AGENT_CLASSES`` as
``threaded=tests.core.threaded_agent:ThreadedAgent``."""

from __future__ import annotations

import threading
import time

from tests.core.probe_agent import ProbeAgent

threading.Thread(target=time.sleep, args=(3600,), name="poller", daemon=True).start()


class ThreadedAgent(ProbeAgent):
    """``@threaded PATH``: the probe agent, from a module that started a thread."""
