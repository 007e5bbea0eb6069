"""The fleet simulator: real agent code per virtual node, deterministic behaviour, polled end to end."""

import threading

import pytest

from devtools.simulator import OUTAGE_PERIOD_S, OUTAGE_S, FleetSimulator, make_server
from fleet.models import GPU, Node
from fleet.telemetry.exposition import parse_exposition
from fleet.telemetry.poll import telemetry_poll
from tests.factories import GPUFactory, NodeFactory

TOKEN = "sim-token"  # noqa: S105 - a test token
AUTH = f"Bearer {TOKEN}"


def test_routes_to_each_nodes_agent_with_its_token_and_known_uuids():
    sim = FleetSimulator(token=TOKEN, seed=1, clock=lambda: 1_700_000_000.0)
    sim.add_node("dgx-1", ["H100"] * 8, ["GPU-aaaaaaaa-0000"] + [None] * 7)
    sim.add_node("t4-1", ["T4"])
    response = sim.handle("/nodes/dgx-1/metrics", authorization=AUTH)
    assert response.status == 200
    readings = parse_exposition(response.body.decode()).readings
    assert len(readings) == 8 and "GPU-aaaaaaaa-0000" in readings
    assert {r.model_name for r in readings.values()} == {"NVIDIA H100 80GB HBM3"}
    assert sim.handle("/nodes/dgx-1/metrics").status == 401
    assert sim.handle("/nodes/nope/metrics", authorization=AUTH).status == 404
    assert sim.handle("/elsewhere", authorization=AUTH).status == 404


def test_behaviour_is_deterministic_and_follows_the_clock():
    a = FleetSimulator(token=TOKEN, seed=3)
    b = FleetSimulator(token=TOKEN, seed=3)
    names = [f"n{i}" for i in range(200)]
    for sim in (a, b):
        for name in names:
            sim.add_node(name, ["L4"])
    assert [a.nodes[n].behaviour for n in names] == [b.nodes[n].behaviour for n in names]
    behaviours = {a.nodes[n].behaviour for n in names}
    assert behaviours == {"training", "inference", "idle"}
    idle = next(a.nodes[n] for n in names if a.nodes[n].behaviour == "idle")
    assert a.utilisation(idle, 1, 0) == 0.0
    inference = next(a.nodes[n] for n in names if a.nodes[n].behaviour == "inference")
    samples = {round(a.utilisation(inference, 0, t * 3600)) for t in range(24)}
    assert len(samples) > 5  # varies through the day


def test_flaky_nodes_go_away_and_come_back():
    now = [0.0]
    sim = FleetSimulator(token=TOKEN, seed=9, clock=lambda: now[0])
    node = next(n for n in (sim.add_node(f"f{i}", ["T4"]) for i in range(400)) if n.flaky)
    statuses = set()
    for t in range(0, OUTAGE_PERIOD_S, OUTAGE_S // 2):
        now[0] = float(t)
        statuses.add(sim.handle(f"/nodes/{node.name}/metrics", authorization=AUTH).status)
    assert statuses == {200, 503}


@pytest.mark.django_db
def test_poller_reads_the_simulated_fleet_over_http(monkeypatch):
    from devtools.management.commands.simulate import simulator_sync

    sim = FleetSimulator(token=TOKEN, seed=2)
    server = make_server(sim, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        monkeypatch.setenv("FLEETDECK_SIM_TOKEN", TOKEN)
        nodes = [
            NodeFactory(telemetry_url=f"{base}/nodes/n{i}/metrics", token_ref="env:FLEETDECK_SIM_TOKEN")
            for i in range(5)
        ]
        for node in nodes:
            for index in range(2):
                GPUFactory(node=node, index=index, model="NVIDIA A10G", memory_mib=22888)
        assert simulator_sync(sim, base) == 5
        assert simulator_sync(sim, base) == 0  # nothing new
        report = telemetry_poll()
        flaky = [n for n in sim.nodes.values() if sim.is_down(n, sim.clock())]
        assert report.nodes_ok == 5 - len(flaky)
        assert report.gpus_created == 0  # the simulator serves the UUIDs the database knows
        assert GPU.objects.filter(sampled_at__isnull=False).count() == 2 * report.nodes_ok
        assert Node.objects.filter(last_seen__isnull=False).count() == report.nodes_ok
    finally:
        server.shutdown()
        server.server_close()
