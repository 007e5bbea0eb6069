"""``manage.py simulate``: serve simulated agents for every node whose telemetry URL points at this simulator."""

import os
import threading
import time

from django.core.management.base import BaseCommand, CommandError

from devtools.simulator import PATH_PREFIX, FleetSimulator, make_server
from fleet.catalog import GPU_SPECS
from fleet.models import Node

RELOAD_INTERVAL_S = 30
MODEL_KEYS = {spec.nvml_name: key for key, spec in GPU_SPECS.items()}


def simulator_sync(simulator: FleetSimulator, base_url: str) -> int:
    """Add the nodes (and their GPUs' models and UUIDs) whose telemetry URL is on ``base_url``; return how many."""
    prefix = base_url.rstrip("/") + PATH_PREFIX
    added = 0
    nodes = Node.objects.filter(telemetry_url__startswith=prefix).prefetch_related("gpus")
    for node in nodes:
        name = node.telemetry_url[len(prefix) :].partition("/")[0]
        gpus = sorted(node.gpus.all(), key=lambda g: g.index)
        known = simulator.nodes.get(name)
        uuids = [g.uuid for g in gpus]
        if known is not None and [g.uuid for g in known.nvml.gpus][: len(uuids)] == uuids:
            continue
        simulator.add_node(name, [MODEL_KEYS.get(g.model, "L4") for g in gpus] or ["L4"], uuids)
        added += 1
    return added


class Command(BaseCommand):
    help = "Serve agent-compatible /metrics for the simulated fleet (nodes whose telemetry_url points here)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9500)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--token-env", default="FLEETDECK_AGENT_TOKEN", help="Variable holding the agents' token.")
        parser.add_argument(
            "--cache-s", type=float, default=0, help="Serve each node's last answer for this long (benchmarks)."
        )
        parser.add_argument("--no-faults", action="store_true", help="No outages, XID errors or lost GPUs.")

    def handle(self, *args, host, port, seed, token_env, cache_s, no_faults, **options):
        token = os.environ.get(token_env)
        if not token:
            raise CommandError(f"Set {token_env} to the bearer token the simulated agents require.")
        simulator = FleetSimulator(token=token, seed=seed, render_cache_s=cache_s, faults=not no_faults)
        base_url = f"http://{host}:{port}"
        count = simulator_sync(simulator, base_url)
        server = make_server(simulator, host, port)
        self.stdout.write(f"simulating {count} nodes at {base_url}{PATH_PREFIX}<name>/metrics")

        def reload_forever():
            while True:
                time.sleep(RELOAD_INTERVAL_S)
                try:
                    added = simulator_sync(simulator, base_url)
                    if added:
                        self.stdout.write(f"simulating {added} more nodes")
                except Exception as exc:  # noqa: BLE001 - keep serving; the next reload may work
                    self.stderr.write(f"reload failed: {exc}")

        threading.Thread(target=reload_forever, daemon=True).start()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
