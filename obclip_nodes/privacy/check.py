"""Runtime check of the core property, for tests and as defence in depth in the node layer."""

from __future__ import annotations

from .errors import ExpansionError
from .expander import Expansion, expand_prompt


def verify_closure(prompt: str, attributes=None, lexicon=None, *, max_candidates: int = 40,
                   blocks: bool = True) -> Expansion:
    """Expand ``prompt`` and re-expand every candidate; raise ``AssertionError`` unless each gives
    the same candidates in the same order with ``real_index`` pointing at itself (with anonymity
    blocks: the same block).  Costs N + 1 expansions.  Returns the expansion of ``prompt``."""
    e = expand_prompt(prompt, attributes, lexicon, max_candidates=max_candidates, blocks=blocks)
    if not (e.n == len(e.candidates) >= 1 and len(set(e.candidates)) == e.n and 0 <= e.real_index < e.n):
        raise AssertionError(f"malformed expansion of {prompt!r}")
    if not e.normalised and e.candidates[e.real_index] != prompt:
        raise AssertionError(f"the real candidate is not the prompt: {e.candidates[e.real_index]!r} != {prompt!r}")
    view = e.public_view()
    if set(view) - {"block"} != {"candidates", "attributes", "slots", "n"} or ("block" in view) != e.blocked:
        raise AssertionError(f"public view has unexpected keys {sorted(view)}")
    for i, c in enumerate(e.candidates):
        try:
            f = expand_prompt(c, attributes, lexicon, max_candidates=max_candidates, blocks=blocks)
        except ExpansionError as err:
            raise AssertionError(f"candidate {c!r} of {prompt!r} does not expand: {err}") from None
        if f.candidates != e.candidates:
            raise AssertionError(f"candidate {c!r} of {prompt!r} expands to a different set")
        if f.real_index != i or f.normalised or f.public_view() != view:
            raise AssertionError(f"candidate {c!r} of {prompt!r}: real_index {f.real_index} != {i} or view differs")
    return e
