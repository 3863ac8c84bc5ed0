"""The `edgecache` command line."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from . import __version__
from .config import ConfigError, Settings, load_settings, settings_as_dict
from .access_log import write_access_lines_to
from .errors import ListenError
from .log import access_logger
from .log_output import CachedTimeFormatter, PeriodicFlushHandler, buffered_stdout

EXIT_CONFIG_ERROR = 2
# The admin listener that purge, stats and explain send requests to, at server.admin_listen's default.
ADMIN_URL = "http://127.0.0.1:8081"
ADMIN_HELP = f"base URL of edgecache's admin listener (default {ADMIN_URL})"
# Exit status when a listener cannot be opened (for example, its port is in use).
EXIT_START_FAILED = 1


def run_async(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on uvloop when it is installed, else on asyncio's default loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def configure_logging(level: str) -> None:
    """Send every logger to stdout through a buffered handler, cheap enough for an access line per request.

    Access lines are written as they are formatted, without the time, level and
    logger prefix of other lines, so that log tools read them as combined-format or
    JSON lines.
    """
    handler = PeriodicFlushHandler(buffered_stdout())
    handler.setFormatter(CachedTimeFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                             bare_loggers=frozenset({access_logger.name})))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    write_access_lines_to(handler)
    # No format of ours shows thread or process names or the caller's source line, so they
    # are not looked up per record. CPython 3.11's logging module documents that setting
    # _srcfile to None skips findCaller(), the stack walk that finds the caller.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None


def _add_listen_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML settings file, see config/edgecache.toml; EDGECACHE_* environment variables "
                             "override it (default: built-in settings)")
    parser.add_argument("--listen", metavar="HOST:PORT",
                        help="proxy listener; port 0 picks a free port (default: server.listen, 127.0.0.1:8080)")
    parser.add_argument("--admin-listen", metavar="HOST:PORT",
                        help="admin listener; port 0 picks a free port "
                             "(default: server.admin_listen, 127.0.0.1:8081)")
    parser.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop by itself after this many seconds (default: run until interrupted)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgecache", description="Reverse-proxy cache for storefront pages.")
    parser.add_argument("--version", action="version", version=f"edgecache {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the proxy in front of an origin")
    serve.add_argument("--origin", metavar="URL",
                       help="origin base URL, for example http://127.0.0.1:9000 (default: origin.url from the settings)")
    serve.add_argument("--workers", metavar="N|auto", type=parse_workers,
                       help="run N worker processes sharing the proxy port, under a supervisor that runs the "
                            "admin listener; auto is one per CPU core (default: one process, no supervisor)")
    _add_listen_flags(serve)

    demo = commands.add_parser("demo", help="run the demo storefront with edgecache in front of it")
    _add_listen_flags(demo)
    demo.add_argument("--origin-listen", metavar="HOST:PORT", default="127.0.0.1:9000",
                      help="demo storefront listener (default 127.0.0.1:9000)")

    origin = commands.add_parser("demo-origin", help="run only the demo storefront")
    origin.add_argument("--listen", metavar="HOST:PORT", default="127.0.0.1:9000",
                        help="demo storefront listener; port 0 picks a free port (default 127.0.0.1:9000)")
    origin.add_argument("--page-bytes", type=int, default=0, metavar="BYTES",
                        help="pad product pages to about this many bytes (default 0: no padding)")
    origin.add_argument("--change-interval", type=float, default=2.0, metavar="SECONDS",
                        help="seconds between stock changes; 0 turns them off (default 2)")
    origin.add_argument("--cache-control", metavar="VALUE",
                        help="Cache-Control value to send on product and category pages (default: none sent)")
    origin.add_argument("--duration", type=float, metavar="SECONDS",
                        help="stop by itself after this many seconds (default: run until interrupted)")

    check = commands.add_parser("check-config", help="validate a settings file and print the effective settings")
    check.add_argument("file", metavar="FILE", help="TOML settings file to check")

    purge = commands.add_parser("purge", help="purge entries through the admin listener")
    purge.add_argument("--admin", metavar="URL", default=ADMIN_URL, help=ADMIN_HELP)
    purge.add_argument("--token", help="admin token (default: the EDGECACHE_ADMIN_TOKEN environment variable)")
    selector = purge.add_mutually_exclusive_group(required=True)
    selector.add_argument("--path", action="append", metavar="PATH|URL",
                          help="purge this path, such as /summit-duffel-1/p; a proxy URL is reduced to its path "
                               "(repeatable)")
    selector.add_argument("--prefix", action="append", metavar="PATH|URL",
                          help="purge every path starting with this prefix, such as /c/; a proxy URL is "
                               "reduced to its path (repeatable)")
    selector.add_argument("--tag", action="append", help="purge every entry with this tag (repeatable)")
    selector.add_argument("--all", action="store_true", help="purge every entry")
    purge.add_argument("--soft", action="store_true",
                       help="mark entries stale instead of removing them (default: remove them)")

    stats = commands.add_parser("stats", help="print the current figures of a running edgecache")
    stats.add_argument("--admin", metavar="URL", default=ADMIN_URL, help=ADMIN_HELP)
    stats.add_argument("--watch", action="store_true",
                       help="redraw every second until interrupted (default: print once)")

    explain = commands.add_parser("explain", help="show what is stored for a URL and how a request would be served")
    explain.add_argument("url", metavar="URL", help="a proxy URL or a path, for example /summit-duffel-1/p")
    explain.add_argument("--admin", metavar="URL", default=ADMIN_URL, help=ADMIN_HELP)
    explain.add_argument("--json", action="store_true", help="print the admin listener's JSON document (default: text)")
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    return settings_loader(args)()


def settings_loader(args: argparse.Namespace) -> Callable[[], Settings]:
    """Return a function that reads the settings file and the environment again, with the flags on top.

    It is a partial of a module function, so worker processes can receive it (pickle).
    """
    overrides: dict[str, dict[str, Any]] = {"server": {}, "origin": {}}
    if getattr(args, "origin", None):
        overrides["origin"]["url"] = args.origin
    if args.listen:
        overrides["server"]["listen"] = args.listen
    if args.admin_listen:
        overrides["server"]["admin_listen"] = args.admin_listen
    return functools.partial(load_settings, args.config, overrides=overrides)


def parse_workers(value: str) -> int:
    """Return the worker count of `--workers`: a positive integer, or the usable CPU cores for auto."""
    if value == "auto":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise argparse.ArgumentTypeError(f"invalid value {value!r}; expected a positive integer or auto")


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import Edgecache, serve_forever

    loader = settings_loader(args)
    settings = loader()
    configure_logging(settings.server.log_level)
    if args.workers is None:
        run_async(serve_forever(Edgecache(settings), duration=args.duration, load_settings=loader))
        return 0
    from .workers.supervisor import Supervisor, run_supervisor

    run_async(run_supervisor(Supervisor(settings, workers=args.workers, load_settings=loader),
                             duration=args.duration))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    print(json.dumps(settings_as_dict(settings), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from . import commands

    handlers = {
        "serve": cmd_serve,
        "check-config": cmd_check_config,
        "demo": commands.cmd_demo,
        "demo-origin": commands.cmd_demo_origin,
        "purge": commands.cmd_purge,
        "stats": commands.cmd_stats,
        "explain": commands.cmd_explain,
    }
    try:
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"edgecache: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    except ListenError as exc:
        print(f"edgecache: start-up failed: {exc}", file=sys.stderr)
        return EXIT_START_FAILED
    except KeyboardInterrupt:
        return 130
