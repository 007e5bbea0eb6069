"""Job placement by cost and data gravity: compute $ plus the egress $ of moving each input dataset.

Pure Python + scipy (no Django): the scheduler app converts its models to these dataclasses and calls
``candidates_for`` (what-if) or ``place_batch`` (the queue).
"""

from scheduler.optimizer.model import (
    ALTERNATIVES_MAX,
    POLICY_VERSION,
    BatchResult,
    Candidate,
    DatasetIn,
    Decision,
    JobIn,
    Move,
    MoveUnpriceable,
    Network,
    NodeIn,
    OfferIn,
)

__all__ = [
    "ALTERNATIVES_MAX",
    "POLICY_VERSION",
    "BatchResult",
    "Candidate",
    "DatasetIn",
    "Decision",
    "JobIn",
    "Move",
    "MoveUnpriceable",
    "Network",
    "NodeIn",
    "OfferIn",
    "candidates_for",
    "place_batch",
]


def __getattr__(name):
    # candidates_for / place_batch live in solve.py; imported lazily so the dataclasses load without scipy.
    if name in ("candidates_for", "place_batch"):
        from scheduler.optimizer import solve

        return getattr(solve, name)
    raise AttributeError(name)
