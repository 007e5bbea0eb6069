"""Management commands of the fleet app (e.g. import_nodes)."""
