"""Beam executor of the image validator.

1. Every example of every split is inspected in parallel (``checks.py``):
   decoded, checked, converted where needed, and hashed.
2. Copies among the accepted files, exact and near, are decided on one worker
   from small records (``duplicates.py``), never from the image bytes: label
   conflicts, leakage across splits, duplicates within a class.
3. Accepted examples (with converted bytes where a conversion was made) are
   written as the ``validated_examples`` artifact, with the same splits; each
   member of a copy group leaves a thumbnail in the report's ``thumbnails/``.
4. A verdict per file goes to ``files.jsonl``; the executor then writes
   ``report.json`` and ``report.md``, with the gate's verdict, which the
   ImageValidationGate component enforces (so the report is published
   whatever the verdict).
"""

import dataclasses
import hashlib
import io
import json
import os
from typing import Any, Dict, List, Optional, Set, Tuple

import apache_beam as beam
import tensorflow as tf
import threadpoolctl
from absl import logging
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import features
from components.image_ingest.executor import LISTING_FILE
from components.image_validator import checks, duplicates, record_io, report as report_lib
from components.image_validator.policy import ValidationPolicy

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
VALIDATED_EXAMPLES_KEY = "validated_examples"
REPORT_KEY = "report"
POLICY_KEY = "policy"
FILES_JSONL = "files.jsonl"
GROUPS_JSON = "groups.json"
THUMBNAILS = "thumbnails"
_THUMBNAIL_SIDE = 112


@dataclasses.dataclass(frozen=True)
class Verdict:
    split: str
    path: str
    label: str
    sha256: str
    reason: Optional[str]
    detail: str
    flags: Tuple[str, ...]
    # The serialized example to train on; None when rejected.
    example: Optional[bytes]
    hashes: bytes = b""
    group: Optional[int] = None

    def rejected(self, reason: str, detail: str) -> "Verdict":
        return dataclasses.replace(self, reason=reason, detail=detail, example=None)

    def candidate(self) -> duplicates.Candidate:
        return duplicates.Candidate(self.path, self.split, self.label, self.sha256, self.hashes)

    def to_record(self) -> Dict[str, Any]:
        record = dataclasses.asdict(self)
        del record["example"], record["hashes"]
        record["flags"] = list(self.flags)
        return record


def _bytes_value(example: tf.train.Example, name: str) -> bytes:
    values = example.features.feature[name].bytes_list.value
    return values[0] if values else b""


def _set_bytes(example: tf.train.Example, name: str, value: bytes) -> None:
    example.features.feature[name].bytes_list.value[:] = [value]


def _set_int(example: tf.train.Example, name: str, value: int) -> None:
    example.features.feature[name].int64_list.value[:] = [value]


def inspect_example(
    serialized: bytes, split: str, policy: ValidationPolicy, label_domain: Optional[Set[str]]
) -> Verdict:
    """The per-file verdict for one ingested example."""
    example = tf.train.Example.FromString(serialized)
    path = _bytes_value(example, features.RELATIVE_PATH).decode("utf-8")
    label = _bytes_value(example, features.LABEL).decode("utf-8")
    inspection = checks.inspect_image(
        _bytes_value(example, features.IMAGE), path, policy,
        ingest_error=_bytes_value(example, features.INGEST_ERROR).decode("utf-8"),
    )
    verdict = Verdict(split, path, label, _bytes_value(example, features.SHA256).decode("ascii"),
                      inspection.reason, inspection.detail, inspection.flags, None, inspection.hashes)
    if inspection.reason:
        return verdict
    if label_domain is not None and label not in label_domain:
        return verdict.rejected(checks.LABEL_NOT_IN_SCHEMA, f"label {label!r} not in the schema's label domain")
    # What the trainer reads describes the bytes it gets (converted or not).
    _set_bytes(example, features.IMAGE, inspection.data)
    _set_bytes(example, features.FORMAT, inspection.image_format.encode("utf-8"))
    _set_int(example, features.HEIGHT, inspection.height)
    _set_int(example, features.WIDTH, inspection.width)
    _set_int(example, features.CHANNELS, inspection.channels)
    return dataclasses.replace(verdict, example=example.SerializeToString())


class _Inspect(beam.DoFn):
    """``inspect_example`` over a split, with NumPy's BLAS on one thread: the hashes' small
    matrix products run many times slower when OpenBLAS spreads each over the cores."""

    def __init__(self, split: str, policy: ValidationPolicy, label_domain: Optional[Set[str]]):
        self._split, self._policy, self._label_domain = split, policy, label_domain
        self._limits = None

    def start_bundle(self):
        self._limits = threadpoolctl.threadpool_limits(limits=1, user_api="blas")

    def finish_bundle(self):
        self._limits.restore_original_limits()

    def process(self, serialized: bytes):
        yield inspect_example(serialized, self._split, self._policy, self._label_domain)


def resolve_copies(
    candidates: List[duplicates.Candidate], policy: ValidationPolicy
) -> Tuple[Dict[str, duplicates.Decision], List[dict]]:
    return duplicates.resolve(candidates, policy)


def apply_decision(verdict: Verdict, resolved: Tuple[Dict[str, duplicates.Decision], List[dict]]) -> Verdict:
    """The verdict once copies are decided: rejected, flagged or kept as it was."""
    decision = resolved[0].get(verdict.path) if verdict.reason is None else None
    if decision is None:
        return verdict
    if decision.reason:
        return dataclasses.replace(verdict.rejected(decision.reason, decision.detail), group=decision.group)
    flags = verdict.flags + ((decision.flag,) if decision.flag else ())
    return dataclasses.replace(verdict, flags=flags, detail=verdict.detail or decision.detail, group=decision.group)


def thumbnail_name(path: str) -> str:
    """The file name of a group member's thumbnail: a hash of its path (any path, one safe name)."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:20] + ".jpg"


class _WriteThumbnail(beam.DoFn):
    """Writes a small JPEG of a copy group's member (before its verdict drops the bytes)."""

    def __init__(self, directory: str):
        self._directory = directory

    def process(self, pair: Tuple[bytes, str]):
        serialized, path = pair
        data = _bytes_value(tf.train.Example.FromString(serialized), features.IMAGE)
        try:
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))  # JPEG: decode at a reduced scale
                image.thumbnail((_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))
                buffer = io.BytesIO()
                image.convert("RGB").save(buffer, format="JPEG", quality=85)
        except Exception as error:  # noqa: BLE001 - a thumbnail is a courtesy: never fail the run for it
            logging.warning("No thumbnail for %s: %s", path, type(error).__name__)
            return
        with tf.io.gfile.GFile(os.path.join(self._directory, thumbnail_name(path)), "wb") as f:
            f.write(buffer.getvalue())


def label_domain_from_schema(schema: schema_pb2.Schema) -> Optional[Set[str]]:
    """The label's string domain in the schema, or None when it has none."""
    for feature in schema.feature:
        if feature.name != features.LABEL:
            continue
        if feature.HasField("string_domain"):
            return set(feature.string_domain.value)
        if feature.HasField("domain"):
            for domain in schema.string_domain:
                if domain.name == feature.domain:
                    return set(domain.value)
    return None


class Executor(base_beam_executor.BaseBeamExecutor):
    """Validates every image and writes the clean examples and the reports."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        validated = artifact_utils.get_single_instance(output_dict[VALIDATED_EXAMPLES_KEY])
        report_artifact = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
        policy = ValidationPolicy.from_dict(json.loads(exec_properties[POLICY_KEY]))
        label_domain = None
        if input_dict.get(SCHEMA_KEY):
            schema_uri = artifact_utils.get_single_uri(input_dict[SCHEMA_KEY])
            label_domain = label_domain_from_schema(io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri)))

        splits = artifact_utils.decode_split_names(examples.split_names)
        validated.split_names = examples.split_names
        thumbnails = os.path.join(report_artifact.uri, THUMBNAILS)
        tf.io.gfile.makedirs(thumbnails)
        files_jsonl = os.path.join(report_artifact.uri, FILES_JSONL)

        with self._make_beam_pipeline() as pipeline:
            per_split = []
            for split in splits:
                pattern = os.path.join(artifact_utils.get_split_uri([examples], split), "*")
                per_split.append(
                    pipeline
                    | f"Read[{split}]" >> record_io.ReadRecords(pattern)
                    | f"Inspect[{split}]" >> beam.ParDo(_Inspect(split, policy, label_domain))
                )
            inspected = per_split | "AllSplits" >> beam.Flatten()
            # Copies are decided on one worker from small records; the verdicts keep their bytes meanwhile.
            resolved = beam.pvalue.AsSingleton(
                inspected
                | "Accepted files" >> beam.Filter(lambda v: v.reason is None)
                | "Candidates" >> beam.Map(lambda v: v.candidate())
                | "AllCandidates" >> beam.combiners.ToList()
                | "ResolveCopies" >> beam.Map(resolve_copies, policy)
            )
            inspected_and_resolved = inspected | "ApplyDecisions" >> beam.Map(
                lambda v, r: (v, apply_decision(v, r)), resolved
            )
            _ = (
                inspected_and_resolved
                | "GroupMembers" >> beam.Filter(lambda pair: pair[1].group is not None)
                | "ImageOfMember" >> beam.Map(lambda pair: (pair[0].example, pair[0].path))
                | "Thumbnails" >> beam.ParDo(_WriteThumbnail(thumbnails))
            )
            verdicts = inspected_and_resolved | "Verdicts" >> beam.Map(lambda pair: pair[1])
            _ = resolved.pvalue | "WriteGroups" >> beam.Map(_write_json, os.path.join(report_artifact.uri, GROUPS_JSON))
            accepted = (
                verdicts
                | "Accepted" >> beam.Filter(lambda v: v.example is not None)
                | "BySplit" >> beam.Partition(lambda v, _: splits.index(v.split), len(splits))
            )
            for split, split_verdicts in zip(splits, accepted):
                _ = (
                    split_verdicts
                    | f"Example[{split}]" >> beam.Map(lambda v: v.example)
                    # Uncompressed: the images are compressed already, and gzip
                    # would cost time here and at every training epoch.
                    | f"Write[{split}]" >> record_io.WriteRecords(
                        os.path.join(artifact_utils.get_split_uri([validated], split), "data"), ".tfrecord"
                    )
                )
            _ = (
                verdicts
                | "Record" >> beam.Map(lambda v: json.dumps(v.to_record(), sort_keys=True).encode("utf-8"))
                | "WriteVerdicts" >> record_io.WriteRecords(files_jsonl, lines=True)
            )

        for split in splits:
            record_io.remove_staging(artifact_utils.get_split_uri([validated], split))
        record_io.remove_staging(report_artifact.uri)
        with tf.io.gfile.GFile(files_jsonl) as f:
            records = [json.loads(line) for line in f if line.strip()]
        listing = _read_listing(examples.uri)
        with tf.io.gfile.GFile(os.path.join(report_artifact.uri, GROUPS_JSON)) as f:
            groups = json.load(f)
        for group in groups:
            for member in group["members"]:
                member["thumbnail"] = f"{THUMBNAILS}/{thumbnail_name(member['path'])}"
        report = report_lib.build_report(records, listing, policy, splits, groups)
        report_lib.write_reports(report, report_artifact.uri)
        counts = report["counts"]
        logging.info(
            "Image validation: %d files seen, %d used, %d rejected; gate %s. Report: %s",
            counts["files_seen"], counts["examples_used"], counts["files_rejected"],
            "passed" if report["gate"]["passed"] else "FAILED",
            os.path.join(report_artifact.uri, report_lib.REPORT_MD),
        )


def _read_listing(examples_uri: str) -> Dict[str, Dict[str, List[str]]]:
    path = os.path.join(examples_uri, LISTING_FILE)
    if not tf.io.gfile.exists(path):
        return {}
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _write_json(resolved: Tuple[Dict[str, duplicates.Decision], List[dict]], path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(resolved[1], f)
