"""Fleet app: the GPU inventory (providers, sites, nodes, GPUs, teams), cloud sync and telemetry."""
