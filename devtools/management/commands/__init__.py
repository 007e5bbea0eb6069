"""Management commands of the development tools (seed_demo, bench, simulate, demo_clouds, mailsink)."""
