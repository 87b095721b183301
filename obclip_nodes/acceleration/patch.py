"""Apply the chosen strategies to the cloud's model, as ModelPatcher wrappers on a clone."""
from __future__ import annotations

from .settings import AccelerationSettings


def accelerate(model, settings: AccelerationSettings, *, n_candidates: int):
    """-> (model to sample with, report dict). Never mutates the caller's model.

    No strategy is implemented yet, so the model comes back unchanged and the report says which
    requested strategies were not applied.
    """
    settings.validate()
    report = {"requested": list(settings.requested), "applied": list(settings.applied),
              "n_candidates": n_candidates}
    return model, report
