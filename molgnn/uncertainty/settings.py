"""``uncertainty`` config group -> UncertaintySettings (checked when Hydra instantiates it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from molgnn.errors import MolgnnError

METHODS = ("none", "conformal", "distance", "mve", "ensemble")
MEMBER_METHODS = ("conformal", "distance", "mve")


@dataclass(frozen=True)
class UncertaintySettings:
    """How a trained model estimates its own error (see docs/uncertainty.md).

    method: ``conformal`` (constant-width split conformal intervals), ``distance`` (spread = the validation
    error expected at the molecule's embedding distance from the training set), ``mve`` (the head predicts
    a variance too, trained with beta-NLL), ``ensemble`` (``members`` models with seeds seed, seed+1, ...,
    each calibrated with ``member_method``, written as one ensemble file), ``none`` (no calibration).
    beta: beta-NLL exponent for ``mve`` (0 = Gaussian NLL, 1 = MSE-like gradients for the mean).
    level: default interval coverage written into reports and used by molgnn-predict.
    mondrian_bins: > 1 = shift-aware intervals, calibrated separately in that many domain-distance bins.
    domain_k / domain_tolerance / max_domain_molecules: k nearest neighbours; in_domain = fitted validation
    error within (1 + tolerance) x the in-distribution error; training molecules kept in the index.
    """

    method: str = "distance"
    beta: float = 0.5
    level: float = 0.9
    mondrian_bins: int = 1
    domain_k: int = 5
    domain_tolerance: float = 0.25
    max_domain_molecules: int = 10000
    members: int = 3
    member_method: str = "distance"

    def __post_init__(self):
        if self.method not in METHODS:
            raise MolgnnError(f"uncertainty.method={self.method!r}: choose one of {', '.join(METHODS)}")
        if not 0.0 < self.level < 1.0:
            raise MolgnnError(f"uncertainty.level={self.level}: must be in (0, 1), e.g. 0.9")
        if self.domain_k < 1 or self.max_domain_molecules < 1 or self.mondrian_bins < 1:
            raise MolgnnError(
                "uncertainty.domain_k, uncertainty.max_domain_molecules and "
                "uncertainty.mondrian_bins must be >= 1"
            )
        if self.member_method not in MEMBER_METHODS or self.members < 2:
            raise MolgnnError(
                f"uncertainty.member_method={self.member_method!r} / uncertainty.members="
                f"{self.members}: members use one of {', '.join(MEMBER_METHODS)}, at least 2 of them"
            )
        if self.domain_tolerance < 0 or self.beta < 0:
            raise MolgnnError("uncertainty.domain_tolerance and uncertainty.beta must be >= 0")

    @property
    def mve(self) -> bool:
        return self.method == "mve"

    def to_dict(self) -> dict:
        return asdict(self)
