"""Copies among the accepted images: exact (same bytes) and near (close perceptual hashes).

Accepted files are linked when their bytes are identical (sha256) or, with
near-duplicate detection on, their hashes are within the policy's threshold
(``near_duplicates.py``).  Each linked group is decided as a whole; its members
are ordered by split (train, then eval, then others) and path, and the first
is the one kept:

* members under two classes or more: a label conflict, every member
  (``label_conflict`` for exact copies, always rejected;
  ``near_duplicate_label_conflict`` otherwise, rejected or flagged);
* a member in a later split than the kept one: leakage (``split_leakage``,
  rejected; ``near_duplicate_leakage``, rejected or flagged);
* a member in the kept one's split: a duplicate (``duplicate_in_class``,
  rejected; ``near_duplicate_in_class``, rejected or flagged).

Only small records travel here (path, split, label, sha256, hashes), never the
image bytes, so one worker decides for the whole dataset.
"""

import dataclasses
from collections.abc import Sequence
from typing import Optional

from components import splits
from components.image_validator import checks, near_duplicates
from components.image_validator.policy import ValidationPolicy


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What deciding between copies needs of one accepted file."""

    path: str
    split: str
    label: str
    sha256: str
    hashes: bytes


@dataclasses.dataclass(frozen=True)
class Decision:
    """The outcome for one group member: rejected (``reason``) or kept with ``flag`` (or neither)."""

    group: int
    reason: Optional[str] = None
    flag: Optional[str] = None
    detail: str = ""


def _split_rank(split: str) -> int:
    return splits.ORDER.index(split) if split in splits.ORDER else len(splits.ORDER)


def _links(candidates: Sequence[Candidate], policy: ValidationPolicy) -> dict[tuple[int, int], int]:
    links: dict[tuple[int, int], int] = {}
    by_sha: dict[str, int] = {}
    for index, candidate in enumerate(candidates):
        first = by_sha.setdefault(candidate.sha256, index)
        if first != index:
            links[(first, index)] = 0
    if policy.near_duplicates:
        hashed = [i for i, c in enumerate(candidates) if c.hashes]
        close = near_duplicates.close_pairs([candidates[i].hashes for i in hashed], policy.near_duplicate_threshold,
                                            policy.near_duplicate_colour_tolerance)
        for (i, j), bits in close.items():
            links.setdefault((hashed[i], hashed[j]), bits)
    return links


def _decide(near_reason: str, exact_reason: str, exact: bool, policy: ValidationPolicy, group: int,
            detail: str) -> Decision:
    """An exact copy is always rejected; a near one as the policy's field named like
    ``near_reason`` says."""
    if exact:
        return Decision(group, reason=exact_reason, detail=detail)
    if policy.rejects(near_reason):
        return Decision(group, reason=near_reason, detail=detail)
    return Decision(group, flag=near_reason, detail=detail)


def resolve(candidates: Sequence[Candidate], policy: ValidationPolicy) -> tuple[dict[str, Decision], list[dict]]:
    """The decision for every member of a group, by path, and the groups for the report."""
    candidates = sorted(candidates, key=lambda c: (_split_rank(c.split), c.path))
    links = _links(candidates, policy)
    decisions: dict[str, Decision] = {}
    report_groups = []
    for number, members in enumerate(near_duplicates.groups(len(candidates), links), start=1):
        keeper = candidates[members[0]]
        labels = sorted({candidates[m].label for m in members})
        described = []
        for position, member in enumerate(members):
            candidate = candidates[member]
            bits = links.get((members[0], member), None)
            exact = candidate.sha256 == keeper.sha256
            if len(labels) > 1:
                exact_elsewhere = any(
                    candidates[o].sha256 == candidate.sha256 and candidates[o].label != candidate.label
                    for o in members)
                others = sorted({candidates[o].label for o in members} - {candidate.label})
                decision = _decide(checks.NEAR_DUPLICATE_LABEL_CONFLICT, checks.LABEL_CONFLICT, exact_elsewhere, policy,
                                   number, f"group {number}: also filed under {others}")
            elif position == 0:
                decision = Decision(number)
            elif candidate.split != keeper.split:
                decision = _decide(checks.NEAR_DUPLICATE_LEAKAGE, checks.SPLIT_LEAKAGE, exact, policy, number,
                                   f"group {number}: {'same bytes as' if exact else 'a near copy of'} "
                                   f"{keeper.path} in split {keeper.split}")
            else:
                decision = _decide(checks.NEAR_DUPLICATE_IN_CLASS, checks.DUPLICATE_IN_CLASS, exact, policy, number,
                                   f"group {number}: {'same bytes as' if exact else 'a near copy of'} {keeper.path}")
            decisions[candidate.path] = decision
            described.append({
                "path": candidate.path, "split": candidate.split, "label": candidate.label,
                "exact_copy_of_first": exact and position > 0,
                "bits_from_first": bits if position else 0,
                "outcome": decision.reason or decision.flag or "kept",
                "rejected": decision.reason is not None,
            })
        kind = "label conflict" if len(labels) > 1 else (
            "leakage" if len({d["split"] for d in described}) > 1 else "duplicate")
        report_groups.append({"group": number, "kind": kind, "members": described})
    return decisions, report_groups
