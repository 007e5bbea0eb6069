"""``python -m fleet.agent``: run the GPU node agent."""

from fleet.agent.cli import main

raise SystemExit(main())
