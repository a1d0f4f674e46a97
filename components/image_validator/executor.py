"""Beam executor of the image validator.

1. The ingest step's references (one per listed file) are read in chunks and
   spread over the workers; each reads the files of a chunk from the data
   folder, in batches, and inspects every one (``checks.py``): checked,
   converted where needed, decoded and hashed.  The accepted examples (with
   converted bytes where a conversion was made) go straight to the bundle's
   staging files, one per output shard (``record_io.py``); only a small verdict
   per file travels on, never the image bytes.  Each worker's count of files
   done reaches the console (``components/progress.py``).
2. On one worker, copies among the accepted files, exact and near, are decided
   from the verdicts (``duplicates.py``): label conflicts, leakage across
   splits, duplicates within a class.  Each member of a copy group leaves a
   thumbnail in the report's ``thumbnails/``; every verdict goes to
   ``files.jsonl``.
3. The kept examples become the ``validated_examples`` artifact, with the same
   splits: each split in shards sized by its bytes, each example in the shard
   and at the rank a hash of the seed and its path gives, so the records are in
   a random order however the folder was listed.  The shards are written in
   parallel.
4. The executor then writes ``report.json`` and ``report.md``, with the gate's
   verdict, which the ImageValidationGate component enforces (so the report
   is published whatever the verdict).
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import io
import json
import os
import posixpath
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import apache_beam as beam
import tensorflow as tf
from absl import logging
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from PIL import Image
from tensorflow_metadata.proto.v0 import schema_pb2
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components import artifacts, features, names, progress
from components.example_records import image_example
from components.image_bytes import Header
from components.image_validator import checks, duplicates, record_io
from components.image_validator import report as report_lib
from components.image_validator.policy import ValidationPolicy

EXAMPLES_KEY = "examples"
SCHEMA_KEY = "schema"
LISTING_KEY = "listing"
VALIDATED_EXAMPLES_KEY = "validated_examples"
REPORT_KEY = "report"
POLICY_KEY = "policy"
SEED_KEY = "seed"
FILES_JSONL = "files.jsonl"
GROUPS_JSON = "groups.json"
THUMBNAILS = "thumbnails"
_PROGRESS = "progress"  # in the staging folder: the workers' counts of files done
_THUMBNAIL_SIDE = 112
# Files decoded per call: enough to keep TensorFlow's threads busy, few to redo when one is broken.
_BATCH = 64
# References per Beam element: a few batches, so the next one's headers are read while one decodes.
_CHUNK = 8 * _BATCH
# Files read at once (threads): reads from a bucket wait on the network, not the CPU.
_READERS = 8


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


@dataclasses.dataclass(frozen=True)
class Reference:
    """What the ingest step wrote of a file: where it is, its label, its size, and why it
    is not to be read ("" when it is)."""

    path: str
    label: str
    file_bytes: int
    ingest_error: str

    @classmethod
    def parse(cls, record: bytes) -> "Reference":
        feature = tf.train.Example.FromString(record).features.feature
        size = feature[features.FILE_BYTES].int64_list.value
        return cls(_first(feature[features.RELATIVE_PATH]).decode("utf-8"),
                   _first(feature[features.LABEL]).decode("utf-8"), size[0] if size else -1,
                   _first(feature[features.INGEST_ERROR]).decode("utf-8"))


def _first(feature: tf.train.Feature) -> bytes:
    """A bytes feature's first value (b"" when it has none)."""
    values = feature.bytes_list.value
    return values[0] if values else b""


def read_file(data_root: str, reference: Reference) -> tuple[bytes, str, str]:
    """``(data, path, error)`` for ``checks``: the file's bytes, or why they could not be read."""
    if reference.ingest_error:
        return b"", reference.path, reference.ingest_error
    path = posixpath.join(data_root.rstrip("/"), names.os_path(reference.path))
    try:
        with FileSystems.open(path, mime_type="application/octet-stream", compression_type="uncompressed") as f:
            return f.read(), reference.path, ""
    except OSError as error:  # permission denied, broken link, vanished file...
        # strerror, not str(): the message names the path, which may not be UTF-8.
        return b"", reference.path, names.escape(f"{type(error).__name__}: {error.strerror or error}")


def _verdict(reference: Reference, data: bytes, inspection: checks.Inspection, split: str,
             label_domain: Optional[set[str]]) -> tuple[Verdict, Optional[bytes]]:
    """A file's verdict, and the serialized example to train on (None when rejected)."""
    sha256 = hashlib.sha256(data).hexdigest()
    verdict = Verdict(split, reference.path, reference.label, sha256, inspection.reason, inspection.detail,
                      inspection.flags, None, inspection.hashes)
    if inspection.reason:
        return verdict, None
    if label_domain is not None and reference.label not in label_domain:
        label = reference.label
        return verdict.rejected(checks.LABEL_NOT_IN_SCHEMA, f"label {label!r} not in the schema's label domain"), None
    # What the trainer reads describes the bytes it gets (converted or not).
    header = Header(inspection.image_format, inspection.height, inspection.width, inspection.channels)
    example = image_example(reference.path, reference.label, inspection.data, header, sha256)
    return verdict, example.SerializeToString()


def inspect_references(records: Sequence[bytes], split: str, policy: ValidationPolicy,
                       label_domain: Optional[set[str]], data_root: str) -> list[tuple[Verdict, Optional[bytes]]]:
    """Each referenced file's verdict, and the serialized example to train on (None when rejected)."""
    references = [Reference.parse(record) for record in records]
    files = [read_file(data_root, reference) for reference in references]
    inspections = checks.inspect_images(files, policy)
    return [_verdict(reference, data, inspection, split, label_domain)
            for reference, (data, _, _), inspection in zip(references, files, inspections)]


def _reference_chunks(split_and_path: tuple[str, str]) -> Iterable[tuple[str, list[bytes]]]:
    """The references of one ingested record file, ``_CHUNK`` at a time."""
    split, path = split_and_path
    for records in record_io.read_batches(path, _CHUNK):
        yield split, records


class _InspectFiles(beam.DoFn):
    """Reads and inspects the files of a chunk of references in batches, and stages the
    accepted ones in the bundle's own files, one per output shard (``record_io``).
    While TensorFlow decodes one batch on a thread of its own, the next batch's files
    are read and their headers checked."""

    def __init__(self, policy: ValidationPolicy, label_domain: Optional[set[str]], staging_dir: str,
                 data_root: str, seed: int, shards: dict[str, int]):
        self._policy, self._label_domain, self._staging_dir = policy, label_domain, staging_dir
        self._data_root, self._seed, self._shards = data_root, seed, shards
        self._files = self._decoder = self._reader = self._tally = None

    def setup(self):
        self._decoder = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        self._reader = concurrent.futures.ThreadPoolExecutor(max_workers=_READERS)

    def teardown(self):
        self._decoder.shutdown()
        self._reader.shutdown()

    def start_bundle(self):
        self._files = record_io.BundleFiles(self._staging_dir)
        self._tally = progress.FileTally(os.path.join(self._staging_dir, _PROGRESS))

    def finish_bundle(self):
        self._files.close()
        self._tally.flush()

    def process(self, chunk: tuple[str, list[bytes]]) -> Iterable[list[Verdict]]:
        """The verdicts, a batch at a time (one element per batch costs Beam less than one per file)."""
        split, records = chunk
        previous = None
        for start in range(0, len(records), _BATCH):
            references = [Reference.parse(record) for record in records[start:start + _BATCH]]
            files = list(self._reader.map(lambda reference: read_file(self._data_root, reference), references))
            decoded = self._decoder.submit(checks.decode_checked, checks.check_headers(files, self._policy),
                                           self._policy)
            if previous:
                yield self._stage(split, *previous)
            previous = references, files, decoded
        if previous:
            yield self._stage(split, *previous)

    def _stage(self, split: str, references, files, decoded: concurrent.futures.Future) -> list[Verdict]:
        batch = []
        for reference, (data, _, _), inspection in zip(references, files, decoded.result()):
            verdict, example = _verdict(reference, data, inspection, split, self._label_domain)
            if example is not None:
                shard, _ = record_io.placement(self._seed, verdict.path, self._shards[split])
                verdict = dataclasses.replace(verdict, staged=self._files.write((split, shard), example))
            batch.append(verdict)
        self._tally.add(len(batch))
        return batch


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


def _decide(batches: list[list[Verdict]], policy: ValidationPolicy, report_uri: str, seed: int,
            shards: dict[str, int]) -> Iterable[tuple[tuple[str, int, int], list[tuple[int, str, int]]]]:
    """On one worker, with every batch of verdicts: decides the copies, writes the thumbnails,
    ``files.jsonl`` and ``groups.json``, and yields each output shard's task:
    ((split, shard, shards), [(rank, staging file, index) of each example it keeps])."""
    inspected = [verdict for batch in batches for verdict in batch]
    resolved = duplicates.resolve([v.candidate() for v in inspected if v.reason is None], policy)
    verdicts = [apply_decision(v, resolved) for v in inspected]
    members = [v for v in inspected if v.staged is not None and resolved[0].get(v.path) is not None]
    images = record_io.read_staged([v.staged for v in members])
    for verdict in members:
        image = _first(tf.train.Example.FromString(images[verdict.staged]).features.feature[features.IMAGE])
        _write_thumbnail(verdict.path, image, os.path.join(report_uri, THUMBNAILS))
    with tf.io.gfile.GFile(os.path.join(report_uri, FILES_JSONL), "w") as f:
        for verdict in sorted(verdicts, key=lambda v: (v.split, v.path)):
            f.write(json.dumps(verdict.to_record(), sort_keys=True) + "\n")
    with tf.io.gfile.GFile(os.path.join(report_uri, GROUPS_JSON), "w") as f:
        json.dump(resolved[1], f)
    kept = collections.defaultdict(list)
    for verdict in verdicts:
        if verdict.staged is not None:
            shard, rank = record_io.placement(seed, verdict.path, shards[verdict.split])
            kept[(verdict.split, shard)].append((rank, *verdict.staged))
    for split, count in shards.items():
        for shard in range(count):  # every shard, kept examples or none: readers find the split whole
            yield (split, shard, count), kept[(split, shard)]


def _write_shard(task: tuple[tuple[str, int, int], list[tuple[int, str, int]]], prefixes: dict[str, str]) -> None:
    (split, shard, count), kept = task
    record_io.write_shard(record_io.shard_name(prefixes[split], shard, count), kept)


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


def _split_sizes(files: Sequence[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """Per split: the files its references name, and their bytes (as listed)."""
    sizes: dict[str, tuple[int, int]] = {}
    for split, path in files:
        count, total = sizes.get(split, (0, 0))
        for records in record_io.read_batches(path, 1024):
            references = [Reference.parse(record) for record in records]
            count += len(references)
            total += sum(max(reference.file_bytes, 0) for reference in references)
        sizes[split] = (count, total)
    return sizes


class Executor(base_beam_executor.BaseBeamExecutor):
    """Validates every image and writes the clean examples and the reports."""

    def Do(self, input_dict, output_dict, exec_properties) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        validated = artifact_utils.get_single_instance(output_dict[VALIDATED_EXAMPLES_KEY])
        report_artifact = artifact_utils.get_single_instance(output_dict[REPORT_KEY])
        policy = ValidationPolicy.from_dict(json.loads(exec_properties[POLICY_KEY]))
        seed = int(exec_properties.get(SEED_KEY) or 0)
        data_root = artifacts.data_root(examples)
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
        sizes = _split_sizes(files)
        shards = {split: record_io.shard_count(sizes.get(split, (0, 0))[1]) for split in splits}
        logging.info("Validating %s files (%s); output shards %s.", sum(n for n, _ in sizes.values()),
                     {split: f"{n} files, {size / 1e6:.1f} MB" for split, (n, size) in sizes.items()}, shards)
        # Uncompressed: the images are compressed already, and gzip would cost time at every epoch.
        prefixes = {split: os.path.join(artifact_utils.get_split_uri([validated], split), "data") for split in splits}
        staging = os.path.join(report_artifact.uri, record_io.STAGING)
        if not any(arg.startswith("--pickle_library") for arg in self._beam_pipeline_args):
            # Beam's default pickler (dill) resets every logger's cache at each of the
            # pipeline's hundred-odd calls, a fixed part of a second that cloudpickle does not cost.
            self._beam_pipeline_args = [*self._beam_pipeline_args, "--pickle_library=cloudpickle"]
        spread = _several_workers(self._beam_pipeline_args)
        total = sum(n for n, _ in sizes.values())
        with progress.watch_files(os.path.join(staging, _PROGRESS), total), self._make_beam_pipeline() as pipeline:
            chunks = (pipeline
                      | "ReferenceFiles" >> beam.Create(files)
                      | "Chunks" >> beam.FlatMap(_reference_chunks))
            if spread:
                chunks = chunks | "Spread" >> beam.Reshuffle()
            tasks = (
                chunks
                | "Inspect" >> beam.ParDo(_InspectFiles(policy, label_domain, staging, data_root, seed, shards))
                # Without a default: a stage less; no verdict at all is decided below.
                | "AllVerdicts" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
                | "Decide" >> beam.FlatMap(_decide, policy, report_artifact.uri, seed, shards)
            )
            if spread:
                tasks = tasks | "SpreadShards" >> beam.Reshuffle()
            _ = tasks | "WriteShards" >> beam.Map(_write_shard, prefixes)
        if not tf.io.gfile.exists(files_jsonl):  # no record in any split
            for task in _decide([], policy, report_artifact.uri, seed, shards):
                _write_shard(task, prefixes)

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
