"""Template tags and filters of the Fleetdeck pages."""
