"""ObCLIP privacy core (plain Python, stdlib only): the Candidate Expander.

``expand_prompt(prompt, attributes=None, lexicon=None, *, max_candidates=40)`` turns a prompt into
the canonical candidate set of ObCLIP (arXiv 2510.04153, Algorithm 1): every combination of the
values of the sensitive attributes it mentions, in an order that does not depend on which candidate
is real.  For every candidate ``c`` of ``expand_prompt(p)``, ``expand_prompt(c)`` gives the same
candidates in the same order, with ``real_index`` pointing at ``c`` -- so the server's view is the
same whichever candidate is real (Theorem 1).

* ``lexicon``: ``None`` (the ``"default"`` preset), a preset name from ``PRESETS``, a path to a JSON
  lexicon (schema: :mod:`obclip_nodes.privacy.lexicon`) or a loaded :class:`Lexicon`.
* ``attributes``: restrict detection to these attribute names (e.g. ``["gender"]``).
* Fails closed: a word that reveals a sensitive type and cannot be swapped raises
  :class:`ExpansionError` naming it, its type and the fixes; ``allow_unprotected=True`` sends it
  as written and says so (``Expansion.outcome == "allowed"``, ``Expansion.unprotected``).
  :func:`check_negative` applies the same detector to the negative prompt.  An optional
  :class:`~.flagger.ModelFlagger` (a local ``transformers`` token-classification model, off by
  default) can only add refusals: ``expand_prompt(..., flagger=ModelFlagger(dir))``.
* Vocabulary is data: ``lexicons/*.json`` (per preset) and ``data/`` (shared sensitive words, the
  generated demonym and first-name tables; ``data/build_tables.py`` rebuilds them).
* How the prompt is read, how N grows (product of value-space sizes over the slots, one slot per
  person and attribute) and the one normalisation (a/an before a swapped word): see
  :mod:`obclip_nodes.privacy.expander` and its stages (tokenize, cues, bind, policy, render).
"""

from .check import verify_closure
from .errors import ExpansionError
from .expander import CandidateList, Expansion, check_negative, expand_prompt
from .lexicon import PRESETS, Lexicon, load_lexicon, parse_lexicon
from .policy import OUTCOMES, Finding

__all__ = ["expand_prompt", "check_negative", "CandidateList", "Expansion", "ExpansionError", "Finding", "OUTCOMES",
           "PRESETS", "Lexicon", "load_lexicon", "parse_lexicon", "verify_closure"]
