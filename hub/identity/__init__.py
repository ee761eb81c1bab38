"""Identity resolution: which contact a record belongs to.

``compare`` turns records into comparable profiles and scores pairs with
explainable per-field evidence; ``resolver`` places a batch of records among the
stored contacts (blocking, scoring, clustering with vetoes and decisions).
"""

from hub.identity.compare import (
    Comparison,
    Evidence,
    Profile,
    blocking_keys,
    compare,
    keys_of,
    keys_version,
    profile,
)
from hub.identity.resolver import (
    Candidate,
    Cluster,
    ProbabilisticResolver,
    Resolution,
    ReviewPair,
)

__all__ = [
    "Candidate",
    "Cluster",
    "Comparison",
    "Evidence",
    "ProbabilisticResolver",
    "Profile",
    "Resolution",
    "ReviewPair",
    "blocking_keys",
    "compare",
    "keys_of",
    "keys_version",
    "profile",
]
