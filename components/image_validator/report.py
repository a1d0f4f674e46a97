"""The validation report: counts, every rejected or flagged file, copy groups, the class balance, the gate.

Paths and class names are the escaped names of ``components/names.py``; in
Markdown each sits in a code span, so every character shows as it is.
"""

import collections
import json
import os
from typing import Any, Optional

import tensorflow as tf

from components import names
from components.image_validator import checks
from components.image_validator.policy import ValidationPolicy
from components.splits import TRAIN

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def _outside_class_records(listing: dict[str, dict[str, list[str]]]) -> list[dict[str, Any]]:
    return [
        {"split": split, "path": path, "label": "", "sha256": "", "reason": checks.OUTSIDE_CLASS_FOLDER,
         "detail": "not inside a class folder, so it has no label", "flags": []}
        for split, entries in sorted(listing.items())
        for path in entries.get("outside_class_folders", [])
    ]


def build_report(
    records: list[dict[str, Any]],
    listing: dict[str, dict[str, list[str]]],
    policy: ValidationPolicy,
    splits: list[str],
    groups: Optional[list[dict[str, Any]]] = None,
) -> dict[str, Any]:
    """``records`` holds one verdict per ingested file (``Verdict.to_record``);
    ``splits`` names the splits of the examples; ``groups`` the copy groups
    (``duplicates.resolve``)."""
    records = sorted(records + _outside_class_records(listing), key=lambda r: (r["path"], r["split"]))
    used = [r for r in records if r["reason"] is None]
    rejected = [r for r in records if r["reason"] is not None]

    empty_folders = sorted(p for entries in listing.values() for p in entries.get("empty_class_folders", []))
    classes: dict[str, dict[str, Any]] = {}
    for label in sorted({r["label"] for r in records if r["label"]} | {p.rsplit("/", 1)[-1] for p in empty_folders}):
        classes[label] = {"used": {}, "rejected": 0}
    for record in used:
        if not record["label"]:  # an unlabelled image (the ones to score): counted per split only
            continue
        per_split = classes[record["label"]]["used"]
        per_split[record["split"]] = per_split.get(record["split"], 0) + 1
    for record in rejected:
        if record["label"]:
            classes[record["label"]]["rejected"] += 1

    train_counts = {label: info["used"].get(TRAIN, 0) for label, info in classes.items()}
    nonzero = [n for n in train_counts.values() if n]
    imbalance = max(nonzero) / min(nonzero) if nonzero else None
    warnings = []
    if imbalance is not None and imbalance > policy.max_class_imbalance:
        warnings.append(
            f"class imbalance {imbalance:.1f}:1 in the training split exceeds {policy.max_class_imbalance:g}:1"
        )

    failures = []
    files_seen = len(records)
    rejected_fraction = len(rejected) / files_seen if files_seen else 0.0
    if not used:
        failures.append("no usable image was found")
    if rejected_fraction > policy.max_rejected_fraction:
        failures.append(
            f"{len(rejected)} of {files_seen} files ({rejected_fraction:.1%}) were rejected, "
            f"more than the allowed {policy.max_rejected_fraction:.1%}"
        )
    # A class with no training image cannot be learned, whatever the minimum.
    min_per_class = max(1, policy.min_examples_per_class)
    for label, count in sorted(train_counts.items()):
        if count < min_per_class:
            failures.append(f"class {label!r} has {count} usable training images, fewer than {min_per_class}")
    used_per_split = collections.Counter(r["split"] for r in used)
    for split in splits:
        if used and not used_per_split[split]:
            failures.append(f"split {split!r} has no usable images")

    return {
        "counts": {
            "files_seen": files_seen,
            "examples_used": len(used),
            "files_rejected": len(rejected),
            "used_per_split": {split: used_per_split[split] for split in sorted(splits)},
            "rejected_by_reason": dict(sorted(collections.Counter(r["reason"] for r in rejected).items())),
            "flagged_by_flag": dict(sorted(collections.Counter(f for r in used for f in r["flags"]).items())),
            "hidden_ignored": sum(len(e.get("hidden", [])) for e in listing.values()),
            "copy_groups": len(groups or []),
        },
        "classes": classes,
        "class_balance": {"train_counts": train_counts, "imbalance_ratio": imbalance, "warnings": warnings},
        "gate": {"passed": not failures, "failures": failures, "rejected_fraction": rejected_fraction},
        "rejected": [{k: r[k] for k in ("path", "split", "label", "reason", "detail")} for r in rejected],
        "flagged": [{k: r.get(k, "") for k in ("path", "split", "label", "flags", "detail")}
                    for r in used if r["flags"]],
        "copy_groups": groups or [],
        "empty_class_folders": empty_folders,
        "ignored": {
            "hidden": sorted(p for e in listing.values() for p in e.get("hidden", [])),
            "repeated_folders": sorted(p for e in listing.values() for p in e.get("repeated_folders", [])),
        },
        "policy": policy.to_dict(),
    }


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _name(name: str) -> str:
    return names.markdown_code(name) if name else ""


def _groups_section(groups: list[dict[str, Any]]) -> list[str]:
    lines = ["## Copy groups", ""]
    if not groups:
        return lines + ["None: no two accepted images are copies or near-copies of each other.", ""]
    lines += ["Each group's images side by side, the first one kept; the table says what became of each.", ""]
    for group in groups:
        members = group["members"]
        lines += [f"### Group {group['group']}: {group['kind']}, {len(members)} images", ""]
        lines.append(" ".join(f"![{i + 1}]({m['thumbnail']})" for i, m in enumerate(members) if m.get("thumbnail")))
        lines.append("")
        lines += _table(
            ["#", "path", "split", "class", "bits from #1", "outcome"],
            [[i + 1, _name(m["path"]), m["split"], _name(m["label"]),
              "same bytes" if m["exact_copy_of_first"]
              else ("" if m["bits_from_first"] is None else m["bits_from_first"]),
              m["outcome"]] for i, m in enumerate(members)],
        )
    return lines


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    if not rows:
        return ["None.", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def to_markdown(report: dict[str, Any]) -> str:
    counts, gate = report["counts"], report["gate"]
    lines = ["# Image validation report", "",
             "Names are escaped: `\\xHH` is a byte that is not UTF-8, `\\n` `\\t` a newline or tab, "
             "`\\\\` a backslash.", ""]
    lines.append("**Gate: passed.**" if gate["passed"] else "**Gate: FAILED; the pipeline stopped before training.**")
    lines += [f"- {failure}" for failure in gate["failures"]] + [""]
    lines += _table(
        ["files seen", "used", "rejected", "rejected fraction", "hidden entries ignored"],
        [[counts["files_seen"], counts["examples_used"], counts["files_rejected"],
          f"{gate['rejected_fraction']:.1%}", counts["hidden_ignored"]]],
    )
    lines += ["## Rejected, by reason", ""] + _table(["reason", "files"], sorted(counts["rejected_by_reason"].items()))
    lines += ["## Classes", ""] + _table(
        ["class", "used per split", "rejected"],
        [[_name(label), ", ".join(f"{s}: {n}" for s, n in sorted(info["used"].items())) or "none", info["rejected"]]
         for label, info in report["classes"].items()],
    )
    for warning in report["class_balance"]["warnings"]:
        lines += [f"Warning: {warning}", ""]
    if report["empty_class_folders"]:
        lines += ["Empty class folders: " + ", ".join(_name(p) for p in report["empty_class_folders"]), ""]
    lines += ["## Rejected files", ""] + _table(
        ["path", "split", "class", "reason", "detail"],
        [[_name(r["path"]), r["split"], _name(r["label"]), r["reason"], r["detail"]] for r in report["rejected"]],
    )
    lines += ["## Flagged files (used)", ""] + _table(
        ["path", "split", "class", "flags", "detail"],
        [[_name(r["path"]), r["split"], _name(r["label"]), ", ".join(r["flags"]), r.get("detail", "")]
         for r in report["flagged"]],
    )
    lines += _groups_section(report.get("copy_groups", []))
    ignored = report["ignored"]
    lines += ["## Left out by the listing policy", ""]
    lines += [f"- hidden: {_name(p)}" for p in ignored["hidden"]]
    lines += [f"- folder reached again: {_name(p)}" for p in ignored["repeated_folders"]]
    lines += ["", "## Policy", "", "```json", json.dumps(report["policy"], indent=1), "```", ""]
    return "\n".join(lines)


def write_reports(report: dict[str, Any], directory: str) -> None:
    with tf.io.gfile.GFile(os.path.join(directory, REPORT_JSON), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    with tf.io.gfile.GFile(os.path.join(directory, REPORT_MD), "w") as f:
        f.write(to_markdown(report))
