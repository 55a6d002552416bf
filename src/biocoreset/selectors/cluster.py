"""The ``cluster`` selector: one member per sequence cluster, the field's redundancy-reduction
baseline (as UniRef90 keeps one sequence per 90%-identity cluster).

The clusters come from an MMseqs2 cluster TSV (``representative<TAB>member``, written by
``biocoreset cluster``, :func:`biocoreset.data.clusters.cluster_to_file` or ``mmseqs
easy-cluster``). It needs the scored sequences' ids, so it selects from a
:class:`~biocoreset.store.result.ScoreResult` (or ``biocoreset select`` on a score file); the ids
in the scores and in the file must be the same set.

* Clusters are drawn uniformly without replacement and each drawn cluster gives one member.
* ``within="random"`` (default) takes a uniformly random member; ``within="influence"`` takes the
  most influential one (the highest score, or the lowest for scores stored as ``-I(z)``; ties: the
  earlier row).
* When the budget exceeds the number of clusters, the clusters are cycled: every cluster gives
  its first member, then the clusters with a member left are drawn again (a fresh uniform order)
  for their second (the next random member, or the next most influential), and so on.
* The seed fixes every draw. The same seed draws the same clusters in the same order whatever
  ``within``, so Cluster and Cluster-influence differ only in which member they take.

Example:
    >>> import tempfile, pathlib
    >>> tsv = pathlib.Path(tempfile.mkdtemp()) / "clu.tsv"
    >>> _ = tsv.write_text("a\\ta\\na\\tb\\na\\tc\\nd\\td\\n")
    >>> sel = ClusterSelector(clusters=str(tsv), within="influence").with_ids(["a", "b", "c", "d"])
    >>> sel.select(np.array([0.1, 0.9, 0.5, 0.0]), 2, seed=0).tolist()  # b leads {a, b, c}
    [1, 3]
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from biocoreset.errors import ConfigError, InputError
from biocoreset.selectors._checks import as_scores, one_of

__all__ = ["WITHIN", "BoundClusterSelector", "ClusterSelector", "cluster_labels", "cluster_order"]

WITHIN = ("random", "influence")
"""How a drawn cluster's member is chosen."""


def _path(value: Any) -> str | None:
    return None if value is None else os.fspath(value)


@attrs.frozen(kw_only=True)
class ClusterSelector:
    """One member per cluster of an MMseqs2 cluster TSV (see the module docstring).

    Args:
        clusters: Path of the cluster TSV (``representative<TAB>member`` per sequence).
        within: ``"random"`` (default) or ``"influence"`` (the most influential member).
        largest: With ``within="influence"``: take the highest stored score (``True``) or the
            lowest (``False``); ``None`` (default): the most influential end, as ``topk``.
    """

    name: ClassVar[str] = "cluster"

    clusters: str | None = attrs.field(default=None, converter=_path)
    within: str = attrs.field(default="random")
    largest: bool | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        one_of("within", self.within, WITHIN)
        if self.largest is not None and not isinstance(self.largest, (bool, np.bool_)):
            raise ConfigError(f"largest must be true, false or None (auto), got {self.largest!r}.")

    def oriented(self, negated: bool) -> ClusterSelector:
        """This selector for scores stored as ``-I(z)`` (``negated``) or ``I(z)``."""
        if self.largest is not None:
            return self
        return attrs.evolve(self, largest=not negated)

    def with_ids(self, ids: Sequence[str]) -> BoundClusterSelector:
        """This selector for scores of the sequences ``ids`` (reads and checks the cluster file).

        Raises:
            ConfigError: No ``clusters`` file was given.
            InputError: The file is malformed, or an id is in the scores but not the file, or in
                the file but not the scores (the first such id is named).
        """
        from biocoreset.data.clusters import read_clusters

        if self.clusters is None:
            raise ConfigError(
                "the cluster selector needs clusters=<MMseqs2 cluster TSV> (--options "
                '\'{"clusters": "clusters.tsv"}\'); write one with `biocoreset cluster`.'
            )
        members = read_clusters(self.clusters)
        return BoundClusterSelector(
            selector=self, labels=cluster_labels(ids, members, source=self.clusters)
        )

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Refused: the cluster selector needs the scores' ids (select from a ``ScoreResult``)."""
        raise ConfigError(
            "the cluster selector needs the scored sequences' ids: select from a ScoreResult "
            "(or a score file), not a plain array."
        )


@attrs.frozen(kw_only=True, repr=False, eq=False)
class BoundClusterSelector:
    """A :class:`ClusterSelector` tied to the rows of one set of scores (``labels``: each row's
    cluster, numbered by first appearance)."""

    name: ClassVar[str] = "cluster"

    selector: ClusterSelector
    labels: np.ndarray

    def __repr__(self) -> str:
        n = int(self.labels.max()) + 1 if self.labels.size else 0
        return f"BoundClusterSelector({self.selector!r}, {self.labels.size} rows, {n} clusters)"

    def select(self, scores: np.ndarray, budget: int, *, seed: int = 0) -> np.ndarray:
        """Indices of the selected rows, ascending."""
        arr = as_scores(scores, budget)
        if arr.size != self.labels.size:
            raise InputError(
                f"the cluster selector was set up for {self.labels.size} ids but got "
                f"{arr.size} scores."
            )
        influence = None
        if self.selector.within == "influence":
            influence = arr if self.selector.largest in (None, True) else -arr
        order = cluster_order(self.labels, seed=seed, influence=influence)
        return np.sort(order[: int(budget)]).astype(np.int64)


def cluster_labels(ids: Sequence[str], members: dict[str, str], *, source: str = "") -> np.ndarray:
    """Each id's cluster number (clusters numbered by their first row in ``ids``).

    Raises:
        InputError: An id is not in ``members``, or a member of ``members`` is not among ``ids``.

    >>> cluster_labels(["x", "y", "z"], {"x": "y", "y": "y", "z": "z"}).tolist()
    [0, 0, 1]
    """
    where = f"the cluster file {source!r}" if source else "the clusters"
    number: dict[str, int] = {}
    labels = np.empty(len(ids), dtype=np.int64)
    for row, rid in enumerate(ids):
        rep = members.get(rid)
        if rep is None:
            raise InputError(
                f"id {rid!r} (row {row} of the scores) is not in {where}; cluster the same corpus "
                "that was scored (`biocoreset cluster`)."
            )
        labels[row] = number.setdefault(rep, len(number))
    if len(members) > len(set(ids)):
        known = set(ids)
        extra = next(m for m in members if m not in known)
        raise InputError(
            f"{where} lists {extra!r}, which is not among the {len(known)} scored ids; cluster "
            "the same corpus that was scored (`biocoreset cluster`)."
        )
    return labels


def cluster_order(
    labels: np.ndarray, *, seed: int, influence: np.ndarray | None = None
) -> np.ndarray:
    """Every row, in the order the cluster selector takes them (its first ``budget`` are selected).

    Each cluster's members are ranked (uniformly at random, or by ``influence`` descending, ties
    by row); rank ``r`` of every cluster comes before rank ``r + 1`` of any, and within a rank the
    clusters come in a uniformly random order drawn per rank. The random keys of the cluster order
    are tied to the clusters' slots, not to which member fills them, so the cluster draws do not
    depend on ``influence``.

    >>> cluster_order(np.array([0, 0, 1]), seed=0, influence=np.array([1.0, 2.0, 0.0])).tolist()
    [2, 1, 0]
    """
    n = labels.size
    rng = np.random.default_rng(seed)
    slot_key = rng.random(n)
    rows = np.arange(n)
    if influence is None:
        grouped = np.lexsort((rng.random(n), labels))
    else:
        grouped = np.lexsort((rows, -np.asarray(influence, dtype=np.float64), labels))
    counts = np.bincount(labels)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = rows - np.repeat(starts, counts)  # slot s of the grouped order is rank rank[s]
    return grouped[np.lexsort((slot_key, rank))]
