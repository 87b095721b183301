"""Server-side cache strategies for the N-candidate batch (settings now; strategies: issue 6)."""
from .settings import AccelerationSettings, STRATEGIES

__all__ = ["AccelerationSettings", "STRATEGIES"]
