"""The GPU node agent: reads NVML and serves dcgm-exporter-compatible /metrics, with no Django import.

Only the standard library and pynvml (nvidia-ml-py) are used, so the package can be copied onto a GPU node
on its own (with an empty ``fleet/__init__.py``). See docs/agent.md.
"""

from fleet.agent.collector import Collector, NvmlUnavailable
from fleet.agent.exposition import METRICS, MetricSpec, render_metrics
from fleet.agent.readings import GpuReading, MigInstanceReading
from fleet.agent.server import Agent, AgentHTTPServer, Response, make_server

__all__ = [
    "METRICS",
    "Agent",
    "AgentHTTPServer",
    "Collector",
    "GpuReading",
    "MetricSpec",
    "MigInstanceReading",
    "NvmlUnavailable",
    "Response",
    "make_server",
    "render_metrics",
]
