"""Clustering that resists chaining: greedy union of match edges under cannot-link checks.

Match edges are applied strongest first (deterministic email, then phone + name, then
probabilistic, each by descending probability, ties by record order). Two clusters are
joined only when no scored pair between them is a cannot-link (two records whose given
names conflict). So a record with only a company phone can join one colleague, but can
no longer pull a second, differently named colleague into the same cluster; the same
holds for a household address or a shared name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from lakehook.resolve.matching import (
    RULE_EMAIL,
    RULE_EMAIL_TYPO,
    RULE_NONE,
    RULE_PHONE,
    ScoredPairs,
)

#: order in which decision rules are applied: the most certain first
_RULE_PRIORITY = {RULE_EMAIL: 0, RULE_PHONE: 1, RULE_EMAIL_TYPO: 2}
#: rank by rule code (index): email 0, phone 1, email one-edit 2, probabilistic 3,
#: unique full name 4 (the weakest: applied last, so any conflict it would create is known)
_RANK_OF_RULE = np.array([9, 0, 1, 3, 2, 4], dtype=np.int8)


@dataclass
class Clustering:
    """Cluster label per record and the edge that holds each record in its cluster."""

    label: npt.NDArray[np.int64]
    best_rule: npt.NDArray[np.int8]
    best_score: npt.NDArray[np.float64]
    refused_edges: int


class _ConstrainedUnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n
        self.cannot: dict[int, set[int]] = {}

    def find(self, x: int) -> int:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    def forbid(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        self.cannot.setdefault(ra, set()).add(rb)
        self.cannot.setdefault(rb, set()).add(ra)

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return True
        if rb in self.cannot.get(ra, ()):
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        absorbed = self.cannot.pop(rb, None)
        if absorbed:
            keep = self.cannot.setdefault(ra, set())
            for other in absorbed:
                peers = self.cannot[other]
                peers.discard(rb)
                peers.add(ra)
                keep.add(other)
        return True


def connected_components(
    n: int, left: npt.NDArray[np.int64], right: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Component of each of ``n`` nodes under the edges, labelled by its smallest node.

    Min-label propagation with pointer jumping, all in numpy: a handful of passes for
    the short chains that customer clusters form.
    """
    label = np.arange(n, dtype=np.int64)
    if left.size == 0:
        return label
    while True:
        lowest = np.minimum(label[left], label[right])
        updated = label.copy()
        np.minimum.at(updated, left, lowest)
        np.minimum.at(updated, right, lowest)
        np.minimum.at(updated, label, updated)  # hook each root to its smallest member
        while True:  # pointer jumping until every node points at a root
            jumped = updated[updated]
            if np.array_equal(jumped, updated):
                break
            updated = jumped
        if np.array_equal(updated, label):
            return label
        label = updated


def cluster_records(
    n: int,
    pairs: ScoredPairs,
    must_link: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None,
) -> Clustering:
    """Cluster ``n`` records (rids 0..n-1) from their scored candidate pairs.

    Args:
        n: Number of records.
        pairs: Scored candidate pairs over those rids.
        must_link: Pairs joined before anything else: unchanged records that shared a
            cluster in the previous run stay together (a split needs a changed record).

    Returns:
        A :class:`Clustering` whose labels are the smallest rid of each cluster.
    """
    empty = np.zeros(0, dtype=np.int64)
    must_left, must_right = must_link if must_link is not None else (empty, empty)
    accepted = np.flatnonzero(pairs.rule != RULE_NONE)
    # plain connected components first (vectorised); only the components holding a
    # cannot-link go through the constrained union-find, edge by edge
    component = connected_components(
        n,
        np.concatenate([must_left, pairs.left[accepted]]),
        np.concatenate([must_right, pairs.right[accepted]]),
    )
    constraint = pairs.cannot_link & (component[pairs.left] == component[pairs.right])
    label = component
    refused = 0
    if constraint.any():
        conflicted = np.zeros(n, dtype=bool)
        conflicted[component[pairs.left[constraint]]] = True
        in_conflict = conflicted[component]
        uf = _ConstrainedUnionFind(n)
        keep = in_conflict[must_left]
        for a, b in zip(must_left[keep].tolist(), must_right[keep].tolist(), strict=True):
            uf.union(a, b)
        for a, b in zip(
            pairs.left[constraint].tolist(), pairs.right[constraint].tolist(), strict=True
        ):
            uf.forbid(a, b)
        local = accepted[in_conflict[pairs.left[accepted]]]
        order = np.lexsort(
            (
                pairs.right[local],
                pairs.left[local],
                -pairs.probability[local],
                _RANK_OF_RULE[pairs.rule[local]],
            )
        )
        for a, b in zip(
            pairs.left[local[order]].tolist(), pairs.right[local[order]].tolist(), strict=True
        ):
            if not uf.union(a, b):
                refused += 1
        nodes = np.flatnonzero(in_conflict)
        roots = np.fromiter((uf.find(i) for i in nodes.tolist()), dtype=np.int64)
        # label = smallest rid of the cluster, independent of union order
        smallest = np.full(n, n, dtype=np.int64)
        np.minimum.at(smallest, roots, nodes)
        label = component.copy()
        label[nodes] = smallest[roots]
    edges = accepted

    best_rule = np.zeros(n, dtype=np.int8)
    best_score = np.zeros(n, dtype=np.float64)
    inside = edges[label[pairs.left[edges]] == label[pairs.right[edges]]]
    if inside.size:
        ends = np.concatenate([pairs.left[inside], pairs.right[inside]])
        scores = np.concatenate([pairs.probability[inside], pairs.probability[inside]])
        rules = np.concatenate([pairs.rule[inside], pairs.rule[inside]])
        rank = _RANK_OF_RULE[rules]
        # per record: the most certain rule, then the highest score
        pick = np.lexsort((-scores, rank, ends))
        first = np.ones(pick.shape[0], dtype=bool)
        first[1:] = ends[pick][1:] != ends[pick][:-1]
        chosen = pick[first]
        best_rule[ends[chosen]] = rules[chosen]
        best_score[ends[chosen]] = scores[chosen]
    return Clustering(
        label=label, best_rule=best_rule, best_score=best_score, refused_edges=refused
    )
