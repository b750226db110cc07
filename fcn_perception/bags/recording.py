"""Reading a recording as it comes out of a car: whole, cut short, or without ``metadata.yaml``.

A rosbag2 folder with its metadata is read with rosbags. A recorder killed by a power cut leaves
no ``metadata.yaml`` and a storage file without its end (an mcap without footer, a sqlite3 file
with a torn last page); such a file is read record by record (the ``mcap`` package, or sqlite3
directly) up to its last intact message, and the recording says it was cut short. Every message
comes out as raw CDR with its connection's type and schema, so a type no typestore knows still
passes through unchanged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


class RecordingError(ValueError):
    """Not a recording, or nothing in it can be read; the message says which and why."""


@dataclass(frozen=True)
class Connection:
    topic: str
    msgtype: str
    msgdef: str = ""  # the recorder's own message definition (ros2msg), for types we do not know
    rihs01: str = ""


@dataclass
class RawMessage:
    topic: str
    msgtype: str
    timestamp: int  # record time, ns
    data: bytes | memoryview  # serialized CDR


@dataclass
class Recording:
    path: Path
    connections: dict[str, Connection] = field(default_factory=dict)  # by topic
    counts: dict[str, int] = field(default_factory=dict)  # from the metadata or index; empty when unknown
    cut_short: str = ""  # why the recording is incomplete ("" = it is whole)
    _iter: object = None

    def messages(self, topics: set[str] | None = None) -> Iterator[RawMessage]:
        """Messages in recorded order (of ``topics`` only, when given), from the start at every call;
        stops at the first damaged record and notes it in ``cut_short``."""
        yield from self._iter(self, topics)

    def note_cut(self, why: str) -> None:
        """Add a reason to ``cut_short`` once, however often the recording is read."""
        if why not in self.cut_short:
            self.cut_short = f"{self.cut_short}; {why}" if self.cut_short else why


def storage_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".mcap", ".db3"))


#: storage files of a rosbag2 recording
STORAGE_SUFFIXES = (".mcap", ".db3")


def is_recording_folder(folder: Path) -> bool:
    """A rosbag2 folder: its metadata.yaml, or (cut short, no metadata) storage files named after it
    (the recorder names them ``<folder>_0.mcap``, ...)."""
    if (folder / "metadata.yaml").is_file():
        return True
    return any(f.suffix in STORAGE_SUFFIXES and f.stem.rsplit("_", 1)[0] == folder.name for f in folder.iterdir() if f.is_file())


def open_recording(path: str | Path) -> Recording:
    path = Path(path)
    if not path.exists():
        raise RecordingError(f"no such bag: {path}")
    if path.name == "metadata.yaml":
        raise RecordingError(f"{path} is the bag's metadata file: give its folder, {path.parent}")
    if path.is_dir() and (path / "metadata.yaml").is_file():
        try:
            return _rosbags(path)
        except RecordingError:
            raise
        except Exception as exc:  # a damaged storage file under intact metadata: read what is there
            files = storage_files(path)
            if not files:
                raise RecordingError(f"{path}: metadata.yaml names no readable storage file ({exc})") from None
            rec = _direct(path, files)
            rec.cut_short = f"storage damaged ({_first_line(exc)}); read up to the last intact message"
            return rec
    files = storage_files(path) if path.is_dir() else [path]
    files = [f for f in files if f.suffix in (".mcap", ".db3")]
    if not files:
        raise RecordingError(f"{path}: not a rosbag2 recording (no metadata.yaml and no .mcap or .db3 file)")
    rec = _direct(path, files)
    rec.cut_short = "no metadata.yaml (the recorder did not finish); read from the storage file up to its last intact message"
    return rec


def _rosbags(path: Path) -> Recording:
    from rosbags.rosbag2 import Reader

    rec = Recording(path)
    with Reader(path) as reader:
        for c in reader.connections:
            msgdef = getattr(c.msgdef, "data", "") or ""
            rec.connections.setdefault(c.topic, Connection(c.topic, c.msgtype, msgdef, getattr(c, "digest", "") or ""))
            rec.counts[c.topic] = rec.counts.get(c.topic, 0) + c.msgcount

    def it(r: Recording, topics: set[str] | None) -> Iterator[RawMessage]:
        with Reader(path) as reader:
            conns = [c for c in reader.connections if topics is None or c.topic in topics]  # the index skips the rest
            try:
                for conn, timestamp, data in reader.messages(connections=conns):
                    yield RawMessage(conn.topic, conn.msgtype, timestamp, data)
            except Exception as exc:  # a torn chunk or page in the middle: what came before is kept
                r.note_cut(f"storage damaged ({_first_line(exc)}); read up to the last intact message")

    rec._iter = it
    return rec


def _direct(path: Path, files: list[Path]) -> Recording:
    readers = {".mcap": _mcap_messages, ".db3": _sqlite_messages}
    rec = Recording(path)
    # connections are learnt while reading; a first pass over the (possibly damaged) file finds them
    for f in files:
        for _ in readers[f.suffix](f, rec, headers_only=True):
            pass
    if not rec.connections:
        raise RecordingError(f"{path}: no readable message in {', '.join(f.name for f in files)} (not a rosbag2 storage file, or empty)")

    def it(r: Recording, topics: set[str] | None) -> Iterator[RawMessage]:
        for f in files:
            yield from (m for m in readers[f.suffix](f, r) if topics is None or m.topic in topics)

    rec._iter = it
    return rec


def _mcap_messages(path: Path, rec: Recording, headers_only: bool = False) -> Iterator[RawMessage]:
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, Schema] = {}
    channels: dict[int, Channel] = {}
    with open(path, "rb") as f:
        try:
            for record in StreamReader(f, validate_crcs=True).records:
                if isinstance(record, Schema):
                    schemas[record.id] = record
                elif isinstance(record, Channel):
                    channels[record.id] = record
                    schema = schemas.get(record.schema_id)
                    msgtype = schema.name if schema else record.metadata.get("type", "")
                    msgdef = schema.data.decode(errors="replace") if schema else ""
                    rec.connections.setdefault(record.topic, Connection(record.topic, msgtype, msgdef))
                elif isinstance(record, Message) and not headers_only:
                    ch = channels.get(record.channel_id)
                    if ch is not None:
                        yield RawMessage(ch.topic, rec.connections[ch.topic].msgtype, record.log_time, record.data)
        except Exception as exc:  # end of a cut file, a torn chunk: everything before it was yielded
            if not headers_only:
                rec.note_cut(f"{path.name}: read up to a damaged record ({exc.__class__.__name__})")


def _sqlite_messages(path: Path, rec: Recording, headers_only: bool = False) -> Iterator[RawMessage]:
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        topics = {row[0]: (row[1], row[2]) for row in db.execute("SELECT id, name, type FROM topics")}
    except sqlite3.DatabaseError as exc:
        raise RecordingError(f"{path}: not a readable sqlite3 rosbag2 file ({exc})") from None
    for name, msgtype in topics.values():
        rec.connections.setdefault(name, Connection(name, msgtype))
    if headers_only:
        db.close()
        return
    try:
        for topic_id, timestamp, data in db.execute("SELECT topic_id, timestamp, data FROM messages ORDER BY timestamp, id"):
            name, msgtype = topics[topic_id]
            yield RawMessage(name, msgtype, timestamp, data)
    except sqlite3.DatabaseError as exc:
        rec.note_cut(f"{path.name}: stopped at a damaged page ({exc})")
    finally:
        db.close()


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{exc.__class__.__name__}: {text.splitlines()[0]}" if text else exc.__class__.__name__
