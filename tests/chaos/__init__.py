"""A seeded fault campaign against a cluster of real ``omha daemon`` processes (issue 14, ``make chaos``).

- :mod:`tests.chaos.worker`: the run-level process of every campaign group; it holds the group's kernel lock
  while it runs and records its own start, stop and liveness, so the history is written by the groups themselves;
- :mod:`tests.chaos.fence`: the fence device's command, which powers a node off synchronously and logs it;
- :mod:`tests.chaos.nemesis`: the fault schedule, drawn up front from a seed (the same seed, the same schedule);
- :mod:`tests.chaos.harness`: runs the cluster and the schedule, recording what it did;
- :mod:`tests.chaos.checker`: reads the records afterwards and checks the safety and liveness claims;
- ``python -m tests.chaos``: the command line ``make chaos`` runs.
"""
