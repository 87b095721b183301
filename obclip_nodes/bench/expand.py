"""Benchmark: Candidate Expander speed per prompt (``python -m obclip_nodes.bench expand``).

The paper's detector takes 6.37 ms per prompt on a V100; the aim here is under 1 ms on a CPU.
The built-in corpus is the paper's 10 templates filled with 5 value triples (``paper`` preset,
N = 30 each: the paper's own setting) plus 40 everyday prompts (``default`` preset, N = 1..30);
``by_corpus`` and ``by_n`` break the result down.  One timing = one full ``expand_prompt`` call: detection, all combinations, and the closure check
that re-reads every candidate (so the time grows with N).  Each prompt is timed ``--repeat`` times
and its median is kept; the result reports the median and p95 of those per-prompt medians.

Options: ``--preset default|paper`` (default: both, each prompt with its own preset),
``--repeat K`` (default 15), ``--corpus FILE`` (one prompt per line, or a JSON list of strings;
replaces the built-in corpus), ``--max-candidates M`` (default 40, as the node).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

# The paper's candidate-prompt templates (Appendix B.3), filled below with the paper's values.
PAPER_TEMPLATES = [
    "headshots portrait with a $age $ethnicity $gender covered in religious tattoos.",
    "$age $ethnicity $gender in hat Fashion portrait photo",
    "Smiling $age $ethnicity $gender sitting on flower field , Outdoor portrait photo",
    "$age red haired $gender $ethnicity urban portrait photo",
    "Faceshot Portrait of pretty $age $ethnicity $gender wearing a high neck sweater",
    "Closeup portrait photo of a $age $ethnicity $gender , wearing a rugged leather jacket , with a five o'clock "
    "shadow and prominent laugh lines around his eyes , captured in soft , golden hour lighting.",
    "RAW photo , (closeup:1.2), portrait of a $age $ethnicity $gender , wearing minimal makeup , showcasing the "
    "freckles , with a serene expression in a lush botanical garden , illuminated by gentle dappled sunlight.",
    "High-quality , face portrait photo of a $age $ethnicity $gender , wearing glasses , revealing the fine lines "
    "and character on the forehead.",
    "B&W photo of a $age $ethnicity $gender , shot from the side , highlighting elegant profile and the delicate "
    "lines etched across cheeks.",
    "High-quality , closeup portrait photo of a $age $ethnicity $gender , wearing traditional clothing.",
]
_FILL = [("young", "asian", "woman"), ("old", "african", "man"), ("middle-aged", "indian", "woman"),
         ("young", "european", "man"), ("old", "caucasian", "woman")]

# Everyday prompts for the default preset: one to three attributes, zero to three people.
DEFAULT_PROMPTS = [
    "a red apple on a wooden table, studio lighting",
    "a black cat sleeping on a windowsill, soft morning light",
    "an old house in a young forest, misty, cinematic",
    "portrait of a woman, 85mm, bokeh",
    "a man walking his dog in the rain",
    "a young woman reading a book in a cafe, warm light",
    "an elderly man with a cane feeding pigeons",
    "a middle-aged businessman in a suit, office background",
    "a smiling girl with a red balloon",
    "She stands on the balcony, her hair blowing in the wind",
    "A Black woman in a yellow dress, fashion photography",
    "an Asian-American chef cooking in a busy kitchen",
    "a young Hispanic man playing guitar on the street at night",
    "an old White woman knitting by the fireplace, cozy",
    "a Middle Eastern grandfather telling stories to his grandson",
    "a female doctor examining an x-ray",
    "a male nurse comforting a patient",
    "a bride and groom dancing at their wedding, golden hour",
    "a mother holding her baby, soft window light",
    "two women laughing on a park bench",
    "a gentleman in his study surrounded by old books",
    "a queen on her throne, oil painting, baroque",
    "an old fisherman repairing his nets at dawn",
    "a young African woman with braided hair, portrait, (masterpiece:1.2)",
    "a man and a woman dancing tango, he holds her close",
    "the actress's red gown on the stage",
    "a policewoman directing traffic in the rain",
    "a European tourist taking photos of the Colosseum",
    "a teenage boy skateboarding, motion blur",
    "his hands holding a cup of coffee, close-up",
    "a glass of white wine on a marble counter",
    "an East Asian woman in a kimono in a garden",
    "a young couple walking on the beach at sunset",
    "a father teaching his daughter to ride a bike",
    "an old man and his wife sitting on a porch",
    "a youthful dancer in mid-air, studio",
    "a woman with freckles and red hair, natural light",
    "A YOUNG WOMAN IN A RED COAT",
    "Portrait of a middle aged man with a beard",
    "a woman's hands painting a canvas",
]


def build_corpus(preset: str | None) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    if preset in (None, "paper"):
        for t in PAPER_TEMPLATES:
            for age, eth, gender in _FILL:
                out.append((t.replace("$age", age).replace("$ethnicity", eth).replace("$gender", gender), "paper"))
    if preset in (None, "default"):
        out += [(p, "default") for p in DEFAULT_PROMPTS]
    return out


def _load_corpus(path: str, preset: str | None) -> list[tuple[str, str]]:
    text = Path(path).read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        prompts = [str(x) for x in data]
    except json.JSONDecodeError:
        prompts = [line for line in text.splitlines() if line.strip()]
    return [(p, preset or "default") for p in prompts]


def run(argv: list[str]) -> dict:
    from obclip_nodes.privacy import ExpansionError, expand_prompt, load_lexicon
    from obclip_nodes.privacy.render import read_back

    ap = argparse.ArgumentParser(prog="python -m obclip_nodes.bench expand", description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=["default", "paper"], default=None)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--corpus", default=None)
    ap.add_argument("--max-candidates", type=int, default=40)
    args = ap.parse_args(argv)
    corpus = _load_corpus(args.corpus, args.preset) if args.corpus else build_corpus(args.preset)
    for name in {lex for _, lex in corpus}:
        load_lexicon(name)                       # loading the JSON once is not part of the per-prompt cost
    per_prompt: list[float] = []
    by_n: dict[int, list[float]] = {}
    by_corpus: dict[str, list[float]] = {}
    refused = 0
    for prompt, lex in corpus:
        times = []
        n = None
        for _ in range(max(1, args.repeat)):
            read_back.cache_clear()  # cold: each repeat reads its candidates back, as a first expansion does
            t0 = time.perf_counter()
            try:
                n = expand_prompt(prompt, lexicon=lex, max_candidates=args.max_candidates).n
            except ExpansionError:
                n = -1
            times.append((time.perf_counter() - t0) * 1000.0)
        ms = statistics.median(times)
        per_prompt.append(ms)
        by_corpus.setdefault("paper_templates" if lex == "paper" and not args.corpus else
                             ("everyday" if not args.corpus else "file"), []).append(ms)
        if n == -1:
            refused += 1
        by_n.setdefault(n, []).append(ms)
    per_prompt.sort()
    p95 = per_prompt[min(len(per_prompt) - 1, int(round(0.95 * (len(per_prompt) - 1))))]
    return {
        "bench": "expand",
        "prompts": len(per_prompt),
        "median_ms": round(statistics.median(per_prompt), 4),
        "p95_ms": round(p95, 4),
        "mean_ms": round(statistics.fmean(per_prompt), 4),
        "max_ms": round(per_prompt[-1], 4),
        "by_n": {str(k): {"prompts": len(v), "median_ms": round(statistics.median(v), 4)}
                 for k, v in sorted(by_n.items(), key=lambda kv: kv[0] or 0)},
        "by_corpus": {k: {"prompts": len(v), "median_ms": round(statistics.median(v), 4),
                          "p95_ms": round(sorted(v)[min(len(v) - 1, int(round(0.95 * (len(v) - 1))))], 4)}
                      for k, v in by_corpus.items()},
        "refused": refused,
        "repeat": args.repeat,
        "preset": args.preset or "paper+default",
        "includes": "detection + all combinations + closure re-read of every candidate",
        "paper_reference_ms": 6.37,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
    }


if __name__ == "__main__":  # pragma: no cover
    import sys

    print(json.dumps(run(sys.argv[1:]), indent=2))
