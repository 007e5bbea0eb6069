"""GPU telemetry: parsing dcgm-exporter/agent output, storing samples, roll-ups, polling, idle and health."""
