"""Command line of the GPU node agent: ``python -m fleet.agent --listen HOST:PORT --token-file PATH``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import stat
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from fleet.agent.collector import Collector, NvmlUnavailable
from fleet.agent.server import Agent, make_server

logger = logging.getLogger("fleet.agent")

DEFAULT_LISTEN = "0.0.0.0:9400"  # dcgm-exporter's port: a node runs one or the other
TOKEN_ENV = "FLEETDECK_AGENT_TOKEN"  # noqa: S105 - the variable's name, not a token
MIN_TOKEN_CHARS = 32


class UsageError(Exception):
    """A command-line or configuration mistake, reported without a traceback."""


def parse_listen(value: str) -> tuple[str, int]:
    """'HOST:PORT' or '[IPv6]:PORT' as (host, port); port 0 picks a free one."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"--listen wants HOST:PORT, got {value!r}")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - listening on every interface is the agent's job
    return host, int(port)


def load_token(token_file: str | None, environ: Mapping[str, str]) -> str | None:
    """The bearer token from --token-file, else from $FLEETDECK_AGENT_TOKEN, else None."""
    if token_file:
        path = Path(token_file)
        try:
            token = path.read_text().strip()
            mode = path.stat().st_mode
        except OSError as exc:
            raise UsageError(f"cannot read --token-file {token_file}: {exc.strerror}") from None
        if not token:
            raise UsageError(f"--token-file {token_file} is empty")
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning("token file %s is readable by other users; chmod 600 it", token_file)
    else:
        token = environ.get(TOKEN_ENV, "").strip()
        if not token:
            return None
    if len(token) < MIN_TOKEN_CHARS:
        logger.warning("the token has %d characters; use at least %d random ones", len(token), MIN_TOKEN_CHARS)
    return token


def build_parser() -> argparse.ArgumentParser:
    """The agent's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m fleet.agent",
        description="Serve this node's GPU telemetry from NVML as dcgm-exporter-compatible /metrics.",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT to serve on (default {DEFAULT_LISTEN})")
    parser.add_argument("--token-file", help=f"file holding the bearer token (default: ${TOKEN_ENV})")
    parser.add_argument(
        "--insecure-no-auth", action="store_true", help="serve /metrics to anyone (for a trusted network only)"
    )
    parser.add_argument("--hostname", help="the Hostname label (default: this machine's host name)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None, *, nvml=None) -> int:
    """Run the agent until SIGTERM or Ctrl-C; the exit status (2 for a usage error).

    ``nvml`` is what the collector reads instead of ``pynvml`` (``python -m devtools.fake_agent`` passes a fake).
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_listen(args.listen)
        token = load_token(args.token_file, os.environ if environ is None else environ)
        if token is None and not args.insecure_no_auth:
            raise UsageError(f"no token: pass --token-file PATH or set ${TOKEN_ENV} (or --insecure-no-auth)")
        if token is not None and args.insecure_no_auth:
            raise UsageError("--insecure-no-auth and a token contradict each other; pick one")
    except UsageError as exc:
        print(f"fleet.agent: error: {exc}", file=sys.stderr)
        return 2

    if nvml is None:
        import pynvml as nvml

    collector = Collector(nvml, hostname=args.hostname)
    try:
        readings = collector.collect()
        logger.info("NVML driver %s, %d GPU(s)", collector.driver_version, len(readings))
    except NvmlUnavailable as exc:
        logger.warning("starting without NVML (%s); /metrics answers 503 until it works", exc)
    try:
        server = make_server(Agent(collector, token=token), host, port)
    except OSError as exc:
        print(f"fleet.agent: error: cannot listen on {args.listen}: {exc.strerror}", file=sys.stderr)
        collector.close()
        return 1
    bound_host, bound_port = server.server_address[:2]
    logger.info("listening on %s:%d (auth %s)", bound_host, bound_port, "off" if token is None else "bearer token")
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        logger.info("stopping")
    finally:
        server.server_close()
        collector.close()
    return 0


def _raise_keyboard_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
