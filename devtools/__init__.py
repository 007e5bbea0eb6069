"""Development tooling: the demo's seed data, fleet simulator, cloud emulators, fake NVML, benchmarks and the
demo's worker supervisor. No domain app (core, fleet, billing, scheduler, dashboard) imports it."""
