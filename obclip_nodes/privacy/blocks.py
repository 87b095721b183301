"""Anonymity blocks: a candidate set C larger than ``max_candidates`` is cut into blocks, and only the
block that holds the real candidate is sent.

The partition is a function of C alone -- the candidates as coordinates (one value index per slot,
a slot being one person's one attribute) and the value-space sizes -- never of which candidate is
real.  So every candidate of a block expands to that same block in the same order (closure holds
within the block), and under a uniform prior over C the server's posterior is 1/|block|.

**Balanced blocks.**  For a full product C = Z_n1 x ... x Z_nm a block is a coset of a subgroup H
whose projection on every coordinate is onto, so inside every block each slot takes each of its
values equally often and the server's marginal of every attribute of every person stays uniform.
H is the solution set of *links*, one per constrained slot: ``x_child = x_parent + shift (mod d)``
with ``d`` dividing both sizes (two people's ethnicities with ``d = 5`` is the Latin-square shift:
``e2 = e1 + j``).  A slot has at most one parent, and parents come first, so the links form a
forest: the constraints are independent (|H| = |C| / prod d) and, going down from the roots, every
coordinate stays uniform.  What the server learns is the shift of every link -- said in words by
:func:`describe`.

When no such design gives blocks of at most ``max_candidates`` (sizes that share no factor, or a C
that the read-back check thinned out), each block of the finest design above the cap is split
greedily into parts as even as integers allow; the deviation is reported as a posterior ratio
against the uniform prior (1.0 = uniform).

Plain Python; no lexicon, no prompt text: slots come in as ``(person ordinal, attribute, values)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# the same attribute of two people with the whole value space is the plainest link to describe
_SAME_ATTRIBUTE, _WHOLE_SPACE = 2, 1
_GREEDY_MAX_PARTS = 64        # the greedy split weighs at most this many open parts per candidate
_IMPROVE_MAX_ITEMS = 1024     # the swap pass after the greedy split runs on sets up to this size


@dataclass(frozen=True)
class Link:
    """Constraint ``x[child] = x[parent] + shift (mod modulus)``; the shift is what a block fixes."""

    parent: int
    child: int
    modulus: int


@dataclass(frozen=True)
class Design:
    """How C is cut: cosets of the links' solution group, each split into ``split`` parts."""

    sizes: tuple
    links: tuple           # Link, ordered by child
    split: int = 1         # 1: exact (every block balanced on every slot)

    @property
    def cosets(self) -> int:
        return math.prod(k.modulus for k in self.links)

    @property
    def exact(self) -> bool:
        return self.split == 1


@dataclass(frozen=True)
class Block:
    """The block of one candidate; every field is the same for every candidate of the block."""

    members: tuple         # indices into C, in C's order
    index: int             # 0-based, in a fixed order of the blocks
    count: int             # number of blocks
    total: int             # |C|
    design: Design
    shifts: tuple          # the shift of every link of the design (what the server learns)
    worst_ratio: float     # max over slots and values of P(value | block) / P(value | C); 1.0 = uniform
    worst: tuple           # (slot, value index, count in block) that attains it; () when uniform

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def balanced(self) -> bool:
        return self.worst_ratio == 1.0


def coords_of_product(sizes: Sequence[int]) -> list[tuple]:
    """Coordinates of every element of the full product, in itertools.product order."""
    out = [()]
    for n in sizes:
        out = [c + (v,) for c in out for v in range(n)]
    return out


def _divisors(g: int) -> list[int]:
    return [d for d in range(2, g + 1) if g % d == 0]


def link_options(slots: Sequence[tuple]) -> list[list]:
    """Per slot: [(score, Link or None)], the ways it can be tied to an earlier slot (or left free)."""
    out = []
    for j, (pj, aj, vj) in enumerate(slots):
        opts = [((0, 0), None)]
        for i, (pi, ai, vi) in enumerate(slots[:j]):
            for d in _divisors(math.gcd(len(vi), len(vj))):
                nice = (_SAME_ATTRIBUTE if ai == aj and pi != pj else 0) + (
                    _WHOLE_SPACE if d == len(vi) == len(vj) else 0)
                opts.append(((nice, -i), Link(i, j, d)))
        out.append(opts)
    return out


def designs(slots: Sequence[tuple]) -> dict:
    """Every number of cosets that links can make -> the best-described set of links making it."""
    best: dict = {1: ((), ())}       # cosets -> (score per slot, links)
    for opts in link_options(slots):
        nxt: dict = {}
        for cos, (score, links) in best.items():
            for s, link in opts:
                key = cos * (link.modulus if link else 1)
                cand = (score + (s,), links + ((link,) if link else ()))
                if key not in nxt or _better(cand[0], nxt[key][0]):
                    nxt[key] = cand
        best = nxt
    return {k: v[1] for k, v in best.items()}


def _better(a: tuple, b: tuple) -> bool:
    return (sum(x[0] for x in a), a) > (sum(x[0] for x in b), b)


def choose(slots: Sequence[tuple], cap: int, full_product: bool = True) -> Design | None:
    """The design for C (the full product of the slots' value spaces when ``full_product``): the fewest
    exact blocks of at most ``cap``; a greedy split when exact blocks would be under half the size a split
    reaches.  None when no design gives blocks of at least 2."""
    sizes = tuple(len(v) for _, _, v in slots)
    total = math.prod(sizes)
    if cap < 2 or total < 2:
        return None
    found = designs(slots) if full_product else {1: ()}
    exact = [(c, links) for c, links in found.items() if total // c <= cap]
    exact_design = min(exact, key=lambda x: x[0]) if exact else None
    split_design, split_size = None, 0
    for c, links in sorted(found.items()):
        q = math.ceil(total / c / cap)
        size = total // (c * q)
        if q > 1 and size >= 2 and (size, c) > (split_size, split_design[0] if split_design else 0):
            split_design, split_size = (c, links, q), size
    if exact_design is not None and total // exact_design[0] >= 2 and (
            split_design is None or 2 * (total // exact_design[0]) >= split_size):
        return Design(sizes, tuple(exact_design[1]), 1)
    if split_design is None:
        return None
    return Design(sizes, tuple(split_design[1]), split_design[2])


def _shifts(design: Design, x: tuple) -> tuple:
    return tuple((x[k.child] - x[k.parent]) % k.modulus for k in design.links)


def _coset_index(design: Design, shifts: tuple) -> int:
    idx = 0
    for k, s in zip(design.links, shifts):
        idx = idx * k.modulus + s
    return idx


def split_evenly(items: Sequence[tuple], sizes: Sequence[int], parts: int) -> list[int]:
    """Part of each item (coordinates, in C order): parts of sizes as equal as integers allow, filled
    greedily so that each slot's values spread over the parts in proportion to their share of ``items``."""
    n_items = len(items)
    cap = [n_items // parts + (1 if k < n_items % parts else 0) for k in range(parts)]
    open_parts = list(range(parts))     # not yet full; with many parts only the first few are weighed
    share = [[0] * n for n in sizes]
    for x in items:
        for j, v in enumerate(x):
            share[j][v] += 1
    counts = [[[0] * n for n in sizes] for _ in range(parts)]
    filled = [0] * parts
    out = []
    for x in items:
        best, best_key = -1, None
        for k in open_parts[:_GREEDY_MAX_PARTS]:
            # how far above its fair share this part already is in the item's values (lower is better)
            over = sum(counts[k][j][v] * n_items - cap[k] * share[j][v] for j, v in enumerate(x))
            key = (over, -(cap[k] - filled[k]) * n_items // cap[k], k)
            if best_key is None or key < best_key:
                best, best_key = k, key
        out.append(best)
        filled[best] += 1
        if filled[best] == cap[best]:
            open_parts.remove(best)
        for j, v in enumerate(x):
            counts[best][j][v] += 1
    if n_items <= _IMPROVE_MAX_ITEMS and parts <= _GREEDY_MAX_PARTS:   # quadratic: bounded to keep a preview quick
        _improve(items, out, counts, cap, share, n_items)
    return out


def _improve(items, part, counts, cap, share, n_items, budget: int = 200) -> None:
    """Swap pairs of items between parts while that lowers the squared distance of the counts from their
    fair shares, starting where a count is furthest above its share (the greedy pass can leave one off by 2)."""
    def dev(k, j, v):
        return counts[k][j][v] * n_items - cap[k] * share[j][v]

    by_part: dict = {}
    for t, k in enumerate(part):
        by_part.setdefault(k, []).append(t)
    for _ in range(budget):
        over = sorted(((dev(k, j, v), k, j, v) for k in by_part for j in range(len(share))
                       for v in range(len(share[j])) if dev(k, j, v) >= n_items), reverse=True)
        done = False
        for _, k, j, v in over:
            best, best_delta = None, 0
            for t in by_part[k]:
                x = items[t]
                if x[j] != v:
                    continue
                for k2, others in by_part.items():
                    if k2 == k or dev(k2, j, v) >= 0:
                        continue
                    for u in others:
                        y = items[u]
                        if y[j] == v:
                            continue
                        delta = 0
                        for jj, (a, b) in enumerate(zip(x, y)):
                            if a != b:   # x leaves k for k2, y leaves k2 for k
                                delta += ((dev(k, jj, a) - n_items) ** 2 - dev(k, jj, a) ** 2
                                          + (dev(k2, jj, a) + n_items) ** 2 - dev(k2, jj, a) ** 2
                                          + (dev(k2, jj, b) - n_items) ** 2 - dev(k2, jj, b) ** 2
                                          + (dev(k, jj, b) + n_items) ** 2 - dev(k, jj, b) ** 2)
                        if delta < best_delta:
                            best, best_delta = (t, u, k2), delta
            if best is not None:
                t, u, k2 = best
                for jj, (a, b) in enumerate(zip(items[t], items[u])):
                    counts[k][jj][a] -= 1
                    counts[k2][jj][a] += 1
                    counts[k2][jj][b] -= 1
                    counts[k][jj][b] += 1
                part[t], part[u] = k2, k
                by_part[k][by_part[k].index(t)] = u
                by_part[k2][by_part[k2].index(u)] = t
                done = True
                break
        if not done:
            return


def block_of(coords: Sequence[tuple], design: Design, real: int) -> Block:
    """The block of ``coords[real]``: the same members, order and index for every member."""
    total = len(coords)
    shifts = _shifts(design, coords[real])
    coset = [t for t, x in enumerate(coords) if _shifts(design, x) == shifts]
    index = _coset_index(design, shifts)
    members = coset
    if design.split > 1:
        part = split_evenly([coords[t] for t in coset], design.sizes, design.split)
        mine = part[coset.index(real)]
        members = [t for t, k in zip(coset, part) if k == mine]
        index = index * design.split + mine
    ratio, worst = marginal_ratio(coords, members, design.sizes)
    return Block(tuple(members), index, design.cosets * design.split, total, design, shifts, ratio, worst)


def partition(coords: Sequence[tuple], design: Design) -> list[tuple]:
    """Every block of C (members per block, in block order): for tests and the bench."""
    blocks: dict = {}
    seen: set = set()
    for t in range(len(coords)):
        if t in seen:
            continue
        b = block_of(coords, design, t)
        seen.update(b.members)
        blocks[b.index] = b.members
    return [blocks[k] for k in sorted(blocks)]


def marginal_ratio(coords: Sequence[tuple], members: Sequence[int], sizes: Sequence[int]) -> tuple[float, tuple]:
    """max over slots j and values v of P(x_j = v | block) / P(x_j = v | C), and where it is reached."""
    total, n = len(coords), len(members)
    worst, at = 1.0, ()
    for j, size in enumerate(sizes):
        prior = [0] * size
        for x in coords:
            prior[x[j]] += 1
        inside = [0] * size
        for t in members:
            inside[coords[t][j]] += 1
        for v in range(size):
            if prior[v]:
                r = (inside[v] * total) / (n * prior[v])
                if r > worst + 1e-12:
                    worst, at = r, (j, v, inside[v])
    return round(worst, 6), at


def _slot_name(slots: Sequence[tuple], j: int) -> str:
    p, a, _ = slots[j]
    return f"person {p + 1}'s {a}"


def _class(values: Sequence[str], d: int, r: int) -> str:
    vs = [v for i, v in enumerate(values) if i % d == r]
    return vs[0] if len(vs) == 1 else "(" + " or ".join(vs) + ")"


def describe_link(slots: Sequence[tuple], link: Link, shift: int) -> str:
    """One link's constraint in words: the value pairs it allows."""
    vi, vj = slots[link.parent][2], slots[link.child][2]
    d = link.modulus
    pairs = ", ".join(f"{_class(vi, d, r)} & {_class(vj, d, (r + shift) % d)}" for r in range(d))
    text = f"{_slot_name(slots, link.parent)} & {_slot_name(slots, link.child)} are one of: {pairs}"
    if shift == 0 and list(vi) == list(vj) and d == len(vi):
        text += f" (the same {slots[link.child][1]})"
    return text


def constraint(slots: Sequence[tuple], block: Block) -> str:
    """What the block tells the server about the real combination, in words ("" for no blocks)."""
    if block.count == 1:
        return ""
    parts = [describe_link(slots, k, s) for k, s in zip(block.design.links, block.shifts)]
    if block.design.exact:
        return "; ".join(parts) + (". Every value of every person's attribute is still equally likely (each appears "
                                   "equally often in the block).")
    if parts:
        what = "; ".join(parts) + f"; and the combination is in part {block.index % block.design.split + 1} " \
            f"of {block.design.split} of that set (the candidates sent)."
    else:
        what = f"the combination is one of the {block.n} candidates sent (part {block.index + 1} of {block.count})."
    if block.worst:
        j, v, c = block.worst
        what += (f" The values are spread as evenly as the sizes allow: at worst {_slot_name(slots, j)} is "
                 f"{slots[j][2][v]} in {c} of the {block.n}, {block.worst_ratio:.2f}x its share in all "
                 f"{block.total}.")
    return what


def describe(slots: Sequence[tuple], block: Block) -> str:
    """The block and what the server learns from it, in words (the node and the badge show it)."""
    if block.count == 1:
        return ""
    return (f"The server receives block {block.index + 1} of {block.count} (N = {block.n} of the {block.total} "
            f"combinations, a partition fixed by the prompt's structure alone, whichever candidate is real), so it "
            f"learns that {constraint(slots, block)}")
