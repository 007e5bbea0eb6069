"""The real node agent over a fake NVML, to try it without a GPU: ``python -m devtools.fake_agent --fake-nvml t4 …``.

``--fake-nvml PROFILE`` (dgx-h100, a100-mig, g5 or t4) and ``--fake-seed N`` choose the simulated GPUs; every
other option is ``python -m fleet.agent``'s, passed on unchanged. No Django import, like the agent itself.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence

from devtools.fake_nvml import PROFILES, FakeNvml
from fleet.agent import cli


def build_parser() -> argparse.ArgumentParser:
    """The fake's own options; the rest of the command line goes to the agent."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_agent",
        description="Run the Fleetdeck node agent over simulated GPUs; other options are python -m fleet.agent's.",
    )
    parser.add_argument(
        "--fake-nvml", metavar="PROFILE", required=True, help=f"the simulated node: {', '.join(PROFILES)}"
    )
    parser.add_argument("--fake-seed", type=int, default=0, help="seed of the simulated GPUs (default 0)")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the agent over ``FakeNvml.from_profile``; the agent's exit status (2 for a usage error)."""
    args, agent_argv = build_parser().parse_known_args(argv)
    try:
        nvml = FakeNvml.from_profile(args.fake_nvml, seed=args.fake_seed)
    except ValueError as exc:
        print(f"devtools.fake_agent: error: {exc}", file=sys.stderr)
        return 2
    return cli.main(agent_argv, environ, nvml=nvml)


if __name__ == "__main__":
    sys.exit(main())
