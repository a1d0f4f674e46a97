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


def _int_value(example: tf.train.Example, name: str) -> int:
    values = example.features.feature[name].int64_list.value
    return values[0] if values else 0


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
    image = _bytes_value(example, features.IMAGE)
    inspection = checks.inspect_image(
        image, path, policy,
        ingest_error=_bytes_value(example, features.INGEST_ERROR).decode("utf-8"),
    )
    verdict = Verdict(split, path, label, _bytes_value(example, features.SHA256).decode("ascii"),
                      inspection.reason, inspection.detail, inspection.flags, None, inspection.hashes)
    if inspection.reason:
        return verdict
    if label_domain is not None and label not in label_domain:
        return verdict.rejected(checks.LABEL_NOT_IN_SCHEMA, f"label {label!r} not in the schema's label domain")
    described = (inspection.image_format.encode("utf-8"), inspection.height, inspection.width, inspection.channels)
    if inspection.data is image and described == (
        _bytes_value(example, features.FORMAT), _int_value(example, features.HEIGHT),
        _int_value(example, features.WIDTH), _int_value(example, features.CHANNELS),
    ):
        return dataclasses.replace(verdict, example=serialized)  # nothing to change: no new copy of the bytes
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

    def __init__(self, policy: ValidationPolicy, label_domain: Optional[Set[str]]):
        self._policy, self._label_domain = policy, label_domain
        self._limits = None

    def start_bundle(self):
        self._limits = threadpoolctl.threadpool_limits(limits=1, user_api="blas")

    def finish_bundle(self):
        self._limits.restore_original_limits()

    def process(self, split_and_record: Tuple[str, bytes]):
        split, serialized = split_and_record
        yield inspect_example(serialized, split, self._policy, self._label_domain)


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


def _thumbnail(data: bytes) -> bytes:
    """A small JPEG of a copy group's member, for the report."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))  # JPEG: decode at a reduced scale
        image.thumbnail((_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


class _WriteOutputs(beam.DoFn):
    """Decides each inspected file's copies, then writes everything it leaves in one pass:
    the accepted example to its split, the verdict line, a copy group member's thumbnail.

    Emits the bundle's staged files as ``(destination, path)``: the split's name, or
    FILES_JSONL; ``record_io`` moves the finished ones into place.
    """

    def __init__(self, staging_dir: str, thumbnails_dir: str):
        self._staging_dir, self._thumbnails_dir = staging_dir, thumbnails_dir
        self._files = None

    def start_bundle(self):
        self._files = record_io.BundleFiles(self._staging_dir)

    def process(self, inspected: Verdict, resolved):
        verdict = apply_decision(inspected, resolved)
        if verdict.group is not None:
            self._write_thumbnail(inspected)
        if verdict.example is not None:
            self._files.write(verdict.split, verdict.example)
        self._files.write(FILES_JSONL, json.dumps(verdict.to_record(), sort_keys=True).encode("utf-8"), lines=True)

    def finish_bundle(self):
        for staged in self._files.close():
            yield beam.transforms.window.GlobalWindows.windowed_value(staged)

    def _write_thumbnail(self, verdict: Verdict) -> None:
        data = _bytes_value(tf.train.Example.FromString(verdict.example), features.IMAGE)
        try:
            thumbnail = _thumbnail(data)
        except Exception as error:  # noqa: BLE001 - a thumbnail is a courtesy: never fail the run for it
            logging.warning("No thumbnail for %s: %s", verdict.path, type(error).__name__)
            return
        with tf.io.gfile.GFile(os.path.join(self._thumbnails_dir, thumbnail_name(verdict.path)), "wb") as f:
            f.write(thumbnail)


def _commit(staged: List[Tuple[str, str]], resolved, prefixes: Dict[str, str], report_uri: str) -> None:
    """Moves the finished bundles' files into place (``prefixes``: each split's record
    file prefix) and writes the copy groups."""
    for split, prefix in prefixes.items():
        record_io.commit_records([path for destination, path in staged if destination == split], prefix, ".tfrecord")
    record_io.commit_lines([path for destination, path in staged if destination == FILES_JSONL],
                           os.path.join(report_uri, FILES_JSONL))
    with tf.io.gfile.GFile(os.path.join(report_uri, GROUPS_JSON), "w") as f:
        json.dump(resolved[1], f)


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
            patterns = {split: os.path.join(artifact_utils.get_split_uri([examples], split), "*") for split in splits}
            # Uncompressed: the images are compressed already, and gzip would cost time at every epoch.
            prefixes = {split: os.path.join(artifact_utils.get_split_uri([validated], split), "data") for split in splits}
            inspected = (
                pipeline
                | "Read" >> record_io.ReadRecords(patterns)
                | "Inspect" >> beam.ParDo(_Inspect(policy, label_domain))
            )
            # Copies are decided on one worker from small records; the verdicts keep their bytes meanwhile.
            resolved = beam.pvalue.AsSingleton(
                inspected
                | "AcceptedFiles" >> beam.FlatMap(lambda v: [v.candidate()] if v.reason is None else [])
                | "AllCandidates" >> beam.combiners.ToList()
                | "ResolveCopies" >> beam.Map(duplicates.resolve, policy)
            )
            _ = (
                inspected
                | "Write" >> beam.ParDo(_WriteOutputs(os.path.join(report_artifact.uri, record_io.STAGING),
                                                      thumbnails), resolved)
                | "Staged" >> beam.combiners.ToList()
                | "Commit" >> beam.Map(_commit, resolved, prefixes, report_artifact.uri)
            )

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

