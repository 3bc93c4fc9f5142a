"""Run the real local init (:class:`omha_core.init.LocalInit`) on a cltab file, taking orders on stdin.

The ``@mount`` tests start it inside a test node's mount namespace (``nsenter``), so that the init and every
agent child it spawns mount only there. One order per line, one answer line each on stdout:

- ``tell GROUP LEVEL`` -> ``ok``
- ``settle GROUP SECONDS`` -> the group's state once its transition is over (``timeout`` if it is not)
- ``status`` -> ``LocalInit.status()`` as JSON

End of input shuts the init down (every entry stopped, agents released) and exits 0. The init's log goes to
stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from omha_core.cltab import parse_cltab
from omha_core.init import LocalInit

#: fast stops, as the core's init tests use them
OPTIONS = {"stop_grace": [0, 0.3, 0.3]}


async def serve(cltab_path: str) -> None:
    """Run the init until stdin closes."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    init = LocalInit(parse_cltab(Path(cltab_path).read_text(), cltab_path), options=OPTIONS)
    await init.start()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := (await reader.readline()).decode():
            order, *args = line.split()
            if order == "tell":
                init.tell(args[0], args[1])
                answer = "ok"
            elif order == "settle":
                try:
                    answer = await init.wait_settled(args[0], float(args[1]))
                except TimeoutError:
                    answer = "timeout"
            elif order == "status":
                answer = json.dumps(init.status())
            else:
                answer = f"unknown order {order!r}"
            print(answer, flush=True)
    finally:
        await init.shutdown()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1]))
