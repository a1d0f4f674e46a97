"""Beam executor of the image validator.

1. The ingested record files are spread over the workers; each reads its files
   in batches and inspects every example (``checks.py``): checked, converted
   where needed, decoded and hashed.  The accepted examples (with converted
   bytes where a conversion was made) go straight to the bundle's staging
   files; only a small verdict per file travels on, never the image bytes.
2. On one worker, copies among the accepted files, exact and near, are decided
   from the verdicts (``duplicates.py``): label conflicts, leakage across
   splits, duplicates within a class.  The staged files become the
   ``validated_examples`` artifact, with the same splits (a file holding an
   example rejected as a copy is rewritten without it); each member of a copy
   group leaves a thumbnail in the report's ``thumbnails/``; every verdict goes
   to ``files.jsonl``.
3. The executor then writes ``report.json`` and ``report.md``, with the gate's
   verdict, which the ImageValidationGate component enforces (so the report
   is published whatever the verdict).
"""

import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import artifacts, features
from components.image_validator import checks, duplicates, record_io
from components.image_validator import report as report_lib
from components.image_validator.policy import ValidationPolicy

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
LISTING_KEY = "listing"
VALIDATED_EXAMPLES_KEY = "validated_examples"
REPORT_KEY = "report"
POLICY_KEY = "policy"
FILES_JSONL = "files.jsonl"
GROUPS_JSON = "groups.json"
THUMBNAILS = "thumbnails"
_THUMBNAIL_SIDE = 112
# Files decoded per call: enough to keep TensorFlow's threads busy, few to redo when one is broken.
_BATCH = 64


@dataclasses.dataclass(frozen=True)
class Verdict:
    split: str
    path: str
    label: str
    sha256: str
    reason: Optional[str]
    detail: str
    flags: tuple[str, ...]
    # Where the example to train on was staged: (file, record index); None when rejected.
    staged: Optional[tuple[str, int]] = None
    hashes: bytes = b""
    group: Optional[int] = None

    def rejected(self, reason: str, detail: str) -> "Verdict":
        return dataclasses.replace(self, reason=reason, detail=detail, staged=None)

    def candidate(self) -> duplicates.Candidate:
        return duplicates.Candidate(self.path, self.split, self.label, self.sha256, self.hashes)

    def to_record(self) -> dict[str, Any]:
        """What ``files.jsonl`` holds of it: everything but the staged location and the hashes."""
        return {"split": self.split, "path": self.path, "label": self.label, "sha256": self.sha256,
                "reason": self.reason, "detail": self.detail, "flags": list(self.flags), "group": self.group}


def _first(feature: tf.train.Feature, kind=bytes):
    """A feature's first value (b"" or 0 when it has none)."""
    values = feature.int64_list.value if kind is int else feature.bytes_list.value
    return values[0] if values else kind()




def _set_bytes(example: tf.train.Example, name: str, value: bytes) -> None:
    example.features.feature[name].bytes_list.value[:] = [value]


def _set_int(example: tf.train.Example, name: str, value: int) -> None:
    example.features.feature[name].int64_list.value[:] = [value]


def _parse(records: Sequence[bytes], policy: ValidationPolicy):
    """The examples of a batch of records, and ``checks.check_headers`` of their images."""
    examples = [tf.train.Example.FromString(record) for record in records]
    files = []
    for example in examples:
        feature = example.features.feature
        files.append((_first(feature[features.IMAGE]), _first(feature[features.RELATIVE_PATH]).decode("utf-8"),
                      _first(feature[features.INGEST_ERROR]).decode("utf-8")))
    return examples, checks.check_headers(files, policy)


def inspect_examples(
    records: Sequence[bytes], split: str, policy: ValidationPolicy, label_domain: Optional[set[str]]
) -> list[tuple[Verdict, Optional[bytes]]]:
    """Each ingested example's verdict, and the serialized example to train on (None when rejected)."""
    examples, checked = _parse(records, policy)
    return _verdicts(records, examples, checks.decode_checked(checked, policy), split, label_domain)


def _verdicts(records, examples, inspections, split, label_domain) -> list[tuple[Verdict, Optional[bytes]]]:
    return [_verdict(record, example, inspection, split, label_domain)
            for record, example, inspection in zip(records, examples, inspections)]


def _verdict(serialized: bytes, example: tf.train.Example, inspection: checks.Inspection, split: str,
             label_domain: Optional[set[str]]) -> tuple[Verdict, Optional[bytes]]:
    feature = example.features.feature
    path = _first(feature[features.RELATIVE_PATH]).decode("utf-8")
    label = _first(feature[features.LABEL]).decode("utf-8")
    verdict = Verdict(split, path, label, _first(feature[features.SHA256]).decode("ascii"),
                      inspection.reason, inspection.detail, inspection.flags, None, inspection.hashes)
    if inspection.reason:
        return verdict, None
    if label_domain is not None and label not in label_domain:
        return verdict.rejected(checks.LABEL_NOT_IN_SCHEMA, f"label {label!r} not in the schema's label domain"), None
    described = (inspection.image_format.encode("utf-8"), inspection.height, inspection.width, inspection.channels)
    if inspection.data == _first(feature[features.IMAGE]) and described == (
        _first(feature[features.FORMAT]), _first(feature[features.HEIGHT], int),
        _first(feature[features.WIDTH], int), _first(feature[features.CHANNELS], int),
    ):
        return verdict, serialized  # nothing to change: no new copy of the bytes
    # What the trainer reads describes the bytes it gets (converted or not).
    _set_bytes(example, features.IMAGE, inspection.data)
    _set_bytes(example, features.FORMAT, inspection.image_format.encode("utf-8"))
    _set_int(example, features.HEIGHT, inspection.height)
    _set_int(example, features.WIDTH, inspection.width)
    _set_int(example, features.CHANNELS, inspection.channels)
    return verdict, example.SerializeToString()


class _InspectFiles(beam.DoFn):
    """Inspects every example of ``(split, record file)`` in batches and stages the
    accepted ones in the bundle's own files (``record_io``).  While TensorFlow
    decodes one batch on a thread of its own, the next batch's headers are read."""

    def __init__(self, policy: ValidationPolicy, label_domain: Optional[set[str]], staging_dir: str):
        self._policy, self._label_domain, self._staging_dir = policy, label_domain, staging_dir
        self._files = self._decoder = None

    def setup(self):
        self._decoder = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def teardown(self):
        self._decoder.shutdown()

    def start_bundle(self):
        self._files = record_io.BundleFiles(self._staging_dir)

    def finish_bundle(self):
        self._files.close()

    def process(self, split_and_path: tuple[str, str]) -> Iterable[list[Verdict]]:
        """The verdicts, a batch at a time (one element per batch costs Beam less than one per file)."""
        split, path = split_and_path
        previous = None
        for records in record_io.read_batches(path, _BATCH):
            examples, checked = _parse(records, self._policy)
            decoded = self._decoder.submit(checks.decode_checked, checked, self._policy)
            if previous:
                yield from self._stage(split, *previous)
            previous = records, examples, decoded
        if previous:
            yield from self._stage(split, *previous)

    def _stage(self, split: str, records, examples, decoded: concurrent.futures.Future) -> Iterable[list[Verdict]]:
        batch = []
        for verdict, example in _verdicts(records, examples, decoded.result(), split, self._label_domain):
            if example is not None:
                verdict = dataclasses.replace(verdict, staged=self._files.write(split, example))
            batch.append(verdict)
        yield batch


def apply_decision(verdict: Verdict, resolved: tuple[dict[str, duplicates.Decision], list[dict]]) -> Verdict:
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


def thumbnail(data: bytes) -> bytes:
    """A small JPEG of an image (a copy group's member, for the report; the run report's
    rejected files)."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))  # JPEG: decode at a reduced scale
        image.thumbnail((_THUMBNAIL_SIDE, _THUMBNAIL_SIDE))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
        return buffer.getvalue()


def _finish(batches: list[list[Verdict]], policy: ValidationPolicy, prefixes: dict[str, str], report_uri: str) -> None:
    """On one worker, with every batch of verdicts: decides the copies, moves the
    staged examples into place (``prefixes``: each split's record file prefix), and
    writes the thumbnails, ``files.jsonl`` and ``groups.json``."""
    inspected = [verdict for batch in batches for verdict in batch]
    resolved = duplicates.resolve([v.candidate() for v in inspected if v.reason is None], policy)
    verdicts = [apply_decision(v, resolved) for v in inspected]
    members = [v for v in inspected if v.staged is not None and resolved[0].get(v.path) is not None]
    images = record_io.read_staged([v.staged for v in members])
    for verdict in members:
        image = _first(tf.train.Example.FromString(images[verdict.staged]).features.feature[features.IMAGE])
        _write_thumbnail(verdict.path, image, os.path.join(report_uri, THUMBNAILS))
    for split, prefix in prefixes.items():
        record_io.commit_records(
            written=[v.staged for v in inspected if v.split == split and v.staged is not None],
            kept={v.staged for v in verdicts if v.split == split and v.staged is not None},
            prefix=prefix, suffix=".tfrecord")
    with tf.io.gfile.GFile(os.path.join(report_uri, FILES_JSONL), "w") as f:
        for verdict in sorted(verdicts, key=lambda v: (v.split, v.path)):
            f.write(json.dumps(verdict.to_record(), sort_keys=True) + "\n")
    with tf.io.gfile.GFile(os.path.join(report_uri, GROUPS_JSON), "w") as f:
        json.dump(resolved[1], f)


def _write_thumbnail(path: str, image: bytes, thumbnails_dir: str) -> None:
    try:
        small = thumbnail(image)
    except Exception as error:  # a thumbnail is a courtesy: never fail the run for it
        logging.warning("No thumbnail for %s: %s", path, type(error).__name__)
        return
    with tf.io.gfile.GFile(os.path.join(thumbnails_dir, thumbnail_name(path)), "wb") as f:
        f.write(small)


def _several_workers(beam_args: list[str]) -> bool:
    """Whether the pipeline may run on more than one worker, so that the record files
    are worth spreading over them (a reshuffle, which costs a stage)."""
    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner
    return runner not in (None, "DirectRunner", "direct") or options.view_as(DirectOptions).direct_num_workers != 1


def label_domain_from_schema(schema: schema_pb2.Schema) -> Optional[set[str]]:
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
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema_uri))
            label_domain = label_domain_from_schema(schema)

        splits = artifact_utils.decode_split_names(examples.split_names)
        validated.split_names = examples.split_names
        thumbnails = os.path.join(report_artifact.uri, THUMBNAILS)
        tf.io.gfile.makedirs(thumbnails)
        files_jsonl = os.path.join(report_artifact.uri, FILES_JSONL)

        files = [(split, path) for split in splits for path in
                 sorted(tf.io.gfile.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "*")))]
        # Uncompressed: the images are compressed already, and gzip would cost time at every epoch.
        prefixes = {split: os.path.join(artifact_utils.get_split_uri([validated], split), "data") for split in splits}
        staging = os.path.join(report_artifact.uri, record_io.STAGING)
        if not any(arg.startswith("--pickle_library") for arg in self._beam_pipeline_args):
            # Beam's default pickler (dill) resets every logger's cache at each of the
            # pipeline's hundred-odd calls, a fixed part of a second that cloudpickle does not cost.
            self._beam_pipeline_args = [*self._beam_pipeline_args, "--pickle_library=cloudpickle"]
        with self._make_beam_pipeline() as pipeline:
            _ = (
                pipeline
                | "RecordFiles" >> beam.Create(files, reshuffle=_several_workers(self._beam_pipeline_args))
                | "Inspect" >> beam.ParDo(_InspectFiles(policy, label_domain, staging))
                # Without a default: a stage less; no verdict at all is finished below.
                | "AllVerdicts" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
                | "Finish" >> beam.Map(_finish, policy, prefixes, report_artifact.uri)
            )
        if not tf.io.gfile.exists(files_jsonl):  # no record in any split
            _finish([], policy, prefixes, report_artifact.uri)

        record_io.remove_staging(report_artifact.uri)
        with tf.io.gfile.GFile(files_jsonl) as f:
            records = [json.loads(line) for line in f if line.strip()]
        listing = {}
        if input_dict.get(LISTING_KEY):
            listing = artifacts.read_listing(artifact_utils.get_single_uri(input_dict[LISTING_KEY]))
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

