"""The ``omha`` command line. Each command imports what it needs when it runs, so ``omha --help`` stays fast."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

from omha_core._version import __version__

Handler = Callable[[argparse.Namespace], int]


def _cmd_plugins(args: argparse.Namespace) -> int:
    from omha_core.plugins import get_registrations, probe_registrations

    pm = get_registrations()  # pluggy only if a plugin is anything but plain registration hooks (issue 19)
    probe_registrations(pm)  # a plugin whose registration hook raises is reported as failed
    infos = sorted(pm.infos.values(), key=lambda i: (not i.builtin, i.name))
    if args.json:
        import json  # only with --json: every import is made where it is used (CLI start-up, issue 19)

        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    for info in infos:
        dist = f"{info.distribution} {info.version}" if info.distribution else "-"
        if info.error:
            print(f"{info.name:<24} {dist:<32} FAILED: {info.error}")
        else:
            print(f"{info.name:<24} {dist:<32} {', '.join(info.hooks)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    import json

    from omha_core.cltab import Cltab
    from omha_core.config import DEFAULT_PATH, deployment_problems, load_config
    from omha_core.errors import ConfigError, OmhaError, ParseError, Problem
    from omha_core.hactl import check_hactl_against_cltab
    from omha_core.plugins import get_plugin_manager
    from omha_core.validate import check_document

    pm = get_plugin_manager()
    errors: list[str] = []

    def problem(message: object) -> None:
        errors.append(str(message))
        print(message, file=sys.stderr)

    config = None
    if args.config or os.environ.get("OMHA_CONFIG") or os.path.exists(DEFAULT_PATH):
        try:
            config = load_config(args.config, pm)
        except ConfigError as exc:
            problem(exc)
        for message in deployment_problems(config) if config else []:
            problem(message)
    docs: dict[str, Cltab | dict[str, str]] = {}
    hactl_warnings: list[Problem] = []
    for name, path in (("cltab", args.cltab), ("hactl", args.hactl)):
        if not path:
            continue
        try:
            with open(path, "rb") as fh:
                docs[name] = check_document(name, fh.read(), path, pm, config, hactl_warnings, local=True)
        except OSError as exc:
            problem(f"{path}: cannot read: {exc.strerror}")
        except ParseError as exc:
            errors.extend(str(p) for p in exc.problems)
            print(exc, file=sys.stderr)
        except OmhaError as exc:  # e.g. two plugins registering the same agent name
            problem(f"{path}: cannot check: {exc}")
    cltab, wanted = docs.get("cltab"), docs.get("hactl")
    warnings = [str(w) for w in cltab.warnings] if isinstance(cltab, Cltab) else []
    warnings += [str(w) for w in hactl_warnings]
    if config is not None:
        from omha_core.quorum import check_warnings

        warnings += check_warnings(config)
    if isinstance(cltab, Cltab) and isinstance(wanted, dict):
        warnings += check_hactl_against_cltab(wanted, cltab, args.hactl)
    for msg in warnings:
        print(f"warning: {msg}", file=sys.stderr)
    if args.system:
        from omha_core.syscheck import missing_tools

        agents = {e.agent for e in cltab.entries if e.agent} if isinstance(cltab, Cltab) else None
        for msg in missing_tools(config, pm, agents):
            problem(msg)
    checked = [p for p in (config and config.path, args.cltab, args.hactl) if p]
    if args.json:
        doc = {"schema": "omha.check/1", "ok": not errors, "checked": checked, "errors": errors}
        print(json.dumps({**doc, "warnings": warnings}, indent=2, sort_keys=True))
    elif not errors:
        print(f"ok: {', '.join(checked) if checked else 'nothing to check'}")
    return 1 if errors else 0


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, asking shutil for the terminal's width only when it formats something.

    argparse builds a formatter for every argument it adds, only to check the argument's metavar, and the width
    lookup imports shutil (with bz2, lzma and zlib, ~2 ms of every command, issue 19). Until help or an error is
    printed the width is a placeholder; then it is what argparse's own formatter gets from the terminal."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        self._deferred = width is None
        super().__init__(prog, indent_increment, max_help_position, 80 if width is None else width)
        self._requested = (indent_increment, max_help_position)

    def format_help(self) -> str:
        if self._deferred:
            argparses = argparse.HelpFormatter(self._prog, *self._requested)  # with the terminal's width
            self._width, self._max_help_position = argparses._width, argparses._max_help_position
            self._deferred = False
        return super().format_help()


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser formatting with :class:`_HelpFormatter`; its subcommands' parsers are of its class too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_subparsers(self, **kwargs: Any) -> Any:
        if "prog" not in kwargs and self.usage is None and not self._get_positional_actions():
            # what argparse formats as the subcommands' prog from a usage line without positionals (the prog
            # alone), given without formatting one, which would look the terminal's width up
            kwargs["prog"] = self.prog
        return super().add_subparsers(**kwargs)


class _Ignored:
    """Absorbs every call made to build a subcommand's parser that is not the one being run."""

    def __getattr__(self, name: str) -> Callable[..., _Ignored]:
        return lambda *args, **kwargs: self


class _OnlyCommand:
    """Stands for the subparsers action when only one command's parser is wanted: ``add_parser`` builds that
    command's parser and hands a throwaway to the others' builders (argparse's per-argument work, formatters and
    gettext look-ups, was ~20 % of ``omha status``, issue 19)."""

    def __init__(self, sub: Any, command: str) -> None:
        self.sub, self.command = sub, command

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        return self.sub.add_parser(name, **kwargs) if name == self.command else _Ignored()


#: every top-level command (tests/core/test_cli.py checks this against the full parser)
COMMANDS = frozenset(
    [
        "plugins",
        "check",
        "daemon",
        "status",
        "tell",
        "load",
        "show",
        "shutdown",
        "fence",
        "demo",
        "move",
        "unmove",
        "standby",
        "unstandby",
        "cleanup",
        "local",
    ]
)


def command_in(argv: list[str]) -> str | None:
    """The command named in ``argv`` (the first word that is neither an option nor ``-c``'s value), when it is
    one of :data:`COMMANDS`; otherwise None (the full parser then reports the mistake as it always did)."""
    it = iter(argv)
    for word in it:
        if word == "--":
            return None
        if word == "-c" or (len(word) > 2 and "--config".startswith(word)):
            next(it, None)  # the option's value (an abbreviated --config too)
            continue
        name = word.split("=", 1)[0]
        if (word.startswith("-c") and not word.startswith("--")) or (len(name) > 2 and "--config".startswith(name)):
            continue  # -cFILE, --config=FILE, --conf=FILE
        if word.startswith("-"):
            return None  # --help, --version, a mistake: the full parser
        return word if word in COMMANDS else None
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand, or with just the command ``only`` (what ``main`` runs)."""
    parser = _Parser(
        prog="omha",
        description="omha: a cluster-wide init. Keeps each resource group of cltab running on exactly one "
        "fit node, at the level hactl asks for.",
    )
    parser.add_argument("--version", action="version", version=f"omha {__version__}")
    parser.add_argument("-c", "--config", help="omha.toml (default: $OMHA_CONFIG or /etc/omha/omha.toml)")
    sub: Any = parser.add_subparsers(dest="command", metavar="COMMAND")
    if only is not None:
        sub = _OnlyCommand(sub, only)
    common = _Parser(add_help=False)
    common.add_argument(
        "-c", "--config", dest="sub_config", help="omha.toml (default: $OMHA_CONFIG or /etc/omha/omha.toml)"
    )

    p = sub.add_parser("plugins", parents=[common], help="list installed plugins, their hooks and load errors")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_plugins)

    p = sub.add_parser("check", parents=[common], help="validate omha.toml, a cltab and an hactl (exit 1 when invalid)")
    p.add_argument("--cltab", help="cltab file to check")
    p.add_argument("--hactl", help="hactl file to check")
    p.add_argument(
        "--system",
        action="store_true",
        help="also report programs the configured plugins run that are missing on this node",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/schemas/)")
    p.set_defaults(func=_cmd_check)

    from omha_core.cli_cluster import add_cluster_commands
    from omha_core.cli_local import add_local_commands
    from omha_core.cli_operator import add_operator_commands

    add_cluster_commands(sub, common)
    add_operator_commands(sub, common)
    add_local_commands(sub, common)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``omha`` command; return its exit status."""
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(command_in(words))
    args = parser.parse_args(words)
    # subcommands may take -c after their name too
    if getattr(args, "sub_config", None):
        args.config = args.sub_config
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return result


if __name__ == "__main__":
    sys.exit(main())
