"""The scheduler: datasets, jobs and their placement by cost and data gravity, and cloud launches."""
