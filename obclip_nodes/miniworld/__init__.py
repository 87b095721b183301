"""A synthetic world where quality is measurable on a CPU.

Captions in the Candidate Expander's own phrasing are rendered into 64x64 portraits where every
attribute has a clear visual code, and a reader recovers every attribute from the pixels. The codes
are arbitrary synthetic conventions of this toy world, not statements about real people.
"""
from .world import ATTRIBUTES, PROTECTED, Portrait, caption, features, parse_caption, read, render

__all__ = ["ATTRIBUTES", "PROTECTED", "Portrait", "caption", "features", "parse_caption", "read", "render"]
