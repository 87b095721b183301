"""Server-side cache strategies for the N-candidate batch (settings now; strategies: issue 6)."""
from .settings import AccelerationSettings, STRATEGIES
from .patch import accelerate

__all__ = ["AccelerationSettings", "STRATEGIES", "accelerate"]
