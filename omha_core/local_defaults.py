"""Default paths of ``omha local`` (Cluster::Init alone), shared by its argument parser
(:mod:`omha_core.cli_local`) and its implementation (:mod:`omha_core.standalone`).

A module of its own so that the implementation need not import the CLI: the parser imports the
implementation (lazily, when a command runs), never the reverse.
"""

from __future__ import annotations

#: the cltab ``omha local`` runs when ``--cltab`` is not given
DEFAULT_CLTAB = "/etc/cltab"
#: the control socket, when neither ``--socket`` nor the cltab's ``:::socket:`` line says
DEFAULT_SOCKET = "/run/omha/local.s"
