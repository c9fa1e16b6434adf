"""SQL over the event archive with an embedded DuckDB (the default query engine).

The archive's objects are copied from S3 into a local cache, compacted, loaded into an
in-memory table `archive_raw`, `events` is computed from it (the rows the view
nudge.domain.archive.EVENTS_VIEW_SQL selects, as a table), and only then does the
user's statement run, on a database that can no longer touch the file system, load an
extension or change a setting. The loaded database serves the next queries of the same
range for as long as the cache's files and the erased ids are unchanged (`_session`).

Cache layout (under `cache_dir`, which is /tmp on Lambda and
~/.cache/nudge/archive/<bucket> for the CLI; `events` is the prefix):

    v1/events/<YYYY-MM-DD-HH>/<digest>.parquet  every archived line of that arrival hour
    v1/events/<YYYY-MM-DD-HH>/<digest>.json     the (key, ETag) of the objects it holds
    v1/events/<YYYY-MM-DD-HH>/listing.json      a sealed hour listed but not downloaded
    v1/events/state.json                        how far the cache is trusted (below)
    v1/events/.staging/<run>/                   downloads in progress (removed after)
    v1/events/.spill/                           DuckDB's temp files, should a query spill

`digest` hashes the hour's sorted (key, ETag) pairs, so an hour whose objects are
unchanged is read from its Parquet file without a single GetObject: a warm Lambda or a
second CLI run downloads nothing. When an hour gains objects (the current hour does),
only the new ones are downloaded and the hour's file is rewritten as the old file plus
the new lines; when an object of the hour vanished or changed, the hour is rebuilt.
One file per hour, however many objects Firehose wrote (local mode writes one per
PutRecordBatch call): a query opens a few Parquet files, not thousands of JSON ones.

Listing is the other cost (10,000 keys are ten ListObjectsV2 pages: seconds). So:
- an hour more than SEAL_AFTER old is sealed; once listed in full it is not listed
  again (state.json: `sealed_through`) until the whole archive is listed again,
  REVERIFY_AFTER after the last time (or with refresh=True): late objects in an old
  hour, and hours expired from S3, show then;
- a recent hour is listed on every query, from its last TAIL_RELIST known keys on
  (Firehose names objects by time, so new ones sort last).
Only keys under `<prefix>YYYY/MM/DD/HH/` are read.

Objects are read whether GZIP (on AWS) or plain (local mode): the gzip magic bytes
decide, and the download stream is decompressed into the hour's staging file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import duckdb
from botocore.exceptions import ClientError

from nudge.constants import ARCHIVE_PREFIX
from nudge.domain.archive import ARCHIVE_COLUMNS, COLUMN_NAMES, EVENTS_VIEW_SQL, iso_ms
from nudge.domain.clock import Clock, SystemClock, utc
from nudge.domain.errors import (
    QueryError,
    QueryForbiddenError,
    QuerySyntaxError,
    QueryTimeoutError,
)
from nudge.domain.query import (
    ARRIVAL_SLACK,
    QueryResult,
    parse_json_value,
    received_bounds,
    single_statement,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectTypeDef

LAYOUT = "v1"
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1024 * 1024
# objects up to this size are held in memory between download and append; larger ones
# spill to a temporary file (Firehose objects on AWS can be tens of MB)
SPOOL_BYTES = 1024 * 1024
HOUR_RE = re.compile(r"^(\d{4})/(\d{2})/(\d{2})/(\d{2})$")
DIR_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})-(\d{2})$")
# An hour older than this is sealed: Firehose has delivered it (buffers flush within
# 15 min), so once listed in full it is read from the cache without listing it again...
SEAL_AFTER = timedelta(hours=3)
# ...until the whole archive is listed again, at most this long after the last time
# (late deliveries, objects expired or rewritten in old hours).
REVERIFY_AFTER = timedelta(hours=24)
# A recent hour the cache knows is re-listed from its last TAIL_RELIST keys on (Firehose
# names objects by time, so new ones sort last): a busy hour of local mode (one object
# per PutRecordBatch call, thousands an hour) costs one small listing, not ten pages.
TAIL_RELIST = 100
STALE_STAGING_SECONDS = 3600
# Loaded archives kept for the next queries (one per range the callers ask for: the
# reports ask for two, the whole archive and the trigger report's window), as long as
# they hold at most KEPT_BYTES together by DuckDB's count (100,000 events: 46 MiB). A
# larger archive is loaded for each query, as before, within the api's 512 MB.
KEPT_DATABASES = 2
KEPT_BYTES = 128 * 1024 * 1024

# statements a query may be: read-only ones (PIVOT is a MULTI statement). Files and
# settings are out of reach anyway (external access off, configuration locked).
ALLOWED_STATEMENTS = frozenset(
    {
        duckdb.StatementType.SELECT,
        duckdb.StatementType.EXPLAIN,
        duckdb.StatementType.MULTI,
        duckdb.StatementType.PRAGMA,
        duckdb.StatementType.CALL,
    }
)
# DuckDB's errors that mean the query text is wrong
_INVALID_QUERY = (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException)

S3ClientFactory = Callable[[], "S3Client"]
Progress = Callable[[int, int], None]


@dataclass
class _Hour:
    """One arrival hour of the archive: what S3 lists and what the cache holds."""

    hour_id: str  # YYYY/MM/DD/HH
    objects: dict[str, str] = field(default_factory=dict)  # key -> ETag
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def dirname(self) -> str:
        return self.hour_id.replace("/", "-")

    @property
    def digest(self) -> str:
        h = hashlib.sha256()
        for key in sorted(self.objects):
            h.update(f"{key}\0{self.objects[key]}\n".encode())
        return h.hexdigest()[:32]


@dataclass
class _Build:
    """An hour being rebuilt: its staging file and which lines came from which object."""

    hour: _Hour
    base: Path | None  # the previous Parquet file whose objects are all still listed
    staging: Path
    missing: list[str]  # keys to download
    remaining: int = 0
    out: IO[bytes] | None = None
    lines: int = 0
    starts: list[tuple[int, str]] = field(default_factory=list)  # (first line, key)


class DuckDbQueryEngine:
    """QueryEngine over the archive bucket's objects (nudge.domain.ports.QueryEngine)."""

    def __init__(
        self,
        bucket: str,
        *,
        cache_dir: Path | str,
        s3_client_factory: S3ClientFactory | None = None,
        endpoint_url: str | None = None,
        region: str | None = None,
        prefix: str = ARCHIVE_PREFIX,
        max_workers: int = 16,
        timeout_seconds: float | None = None,
        progress: Progress | None = None,
        clock: Clock | None = None,
        refresh: bool = False,
        erased: Callable[[], frozenset[str]] | None = None,
        kept_bytes: int = KEPT_BYTES,
    ) -> None:
        self.bucket = bucket
        # the digests of erased ids (nudge.adapters.erased): their events are left out
        self.erased = erased
        self.prefix = prefix
        self.root = Path(cache_dir) / LAYOUT / (prefix.strip("/").replace("/", "_") or "_")
        self.clock = clock or SystemClock()
        self.refresh = refresh  # the next sync lists the whole archive again
        self.max_workers = max_workers
        self.timeout_seconds = timeout_seconds
        self.progress = progress
        self._factory = s3_client_factory or _default_s3_factory(endpoint_url, region, max_workers)
        self._s3: S3Client | None = None
        self._lock = threading.Lock()
        self.downloaded = 0  # objects fetched by the last sync (0 on a warm cache)
        self._load_lock = threading.Lock()
        # sealed hours' folders as last read: (their stat times and size, listing, file)
        self._hour_folders: dict[Path, tuple[tuple[int, int, int], _Hour | None, Path | None]] = {}
        self._root_listing: tuple[tuple[int, int, int], dict[str, Path]] | None = None
        # loaded archives kept for the next queries: (key, database, its bytes)
        self._databases: list[tuple[tuple[Any, ...], duckdb.DuckDBPyConnection, int]] = []
        self.kept_bytes = kept_bytes

    # ---- the port -----------------------------------------------------------------
    def query(
        self, sql: str, *, since: datetime | None = None, until: datetime | None = None
    ) -> QueryResult:
        since, until = received_bounds(since, until)
        con = self._session(since, until)
        timer: threading.Timer | None = None
        try:
            statement = _one_statement(con, sql)
            if self.timeout_seconds:
                timer = threading.Timer(self.timeout_seconds, con.interrupt)
                timer.daemon = True
                timer.start()
            return _run(con, statement)
        finally:
            if timer is not None:
                timer.cancel()
            con.close()

    def _session(self, since: datetime | None, until: datetime | None) -> duckdb.DuckDBPyConnection:
        """A connection to the range's archive loaded into an in-memory database, locked
        (no file, no extension, no setting) before any query runs on it.

        The database is kept for the next queries of the same range while the cache's
        files (named by the digest of their objects), the range and the erased ids are
        the same: a page of reports asked for at once loads the archive once, not once
        per report, and a warm function loads it again only when objects were added.
        Syncs and loads take turns (one lock): concurrent first queries would otherwise
        each download and build the same hours. The most recent are kept (KEPT_DATABASES,
        KEPT_BYTES); one dropped is freed when its last query ends."""
        with self._load_lock:
            files = self.sync(since=since, until=until)
            erased = tuple(sorted(self.erased())) if self.erased is not None else ()
            key = (tuple(str(f) for f in files), since, until, erased)
            for i, kept in enumerate(self._databases):
                if kept[0] == key:
                    self._databases.insert(0, self._databases.pop(i))
                    return kept[1].cursor()
            db = self._connect()
            try:
                self._load(db, files, since, until, erased)
                db.execute("SET enable_external_access = false")
                db.execute("SET lock_configuration = true")
                row = db.execute(
                    "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()"
                ).fetchone()
            except BaseException:
                db.close()
                raise
            self._keep(key, db, int(row[0]) if row else 0)
            return db.cursor()

    def _keep(self, key: tuple[Any, ...], db: duckdb.DuckDBPyConnection, size: int) -> None:
        self._databases.insert(0, (key, db, size))
        total = 0
        for i, (_, _, held) in enumerate(self._databases):
            total += held
            if i >= KEPT_DATABASES or total > self.kept_bytes:
                del self._databases[i:]
                break

    # ---- S3 -> cache --------------------------------------------------------------
    def sync(self, *, since: datetime | None = None, until: datetime | None = None) -> list[Path]:
        """Brings the cache up to date for the range; returns its Parquet files.

        Lists (in parallel): the hours sealed since the last sync (all of them on a
        fresh cache, or once the last full listing is REVERIFY_AFTER old), and each
        recent hour of the range (its tail when the cache knows it). Sealed hours
        listed before are read from the cache with no call at all."""
        now = utc(self.clock.now())
        first = _hour_id(since) if since else None
        last = _hour_id(until + ARRIVAL_SLACK) if until else None
        seal_line = _hour_id(now - SEAL_AFTER)
        self.root.mkdir(parents=True, exist_ok=True)
        state = self._read_state()
        trusted: str | None = None
        if state and not self.refresh:
            verified = datetime.fromisoformat(state["verified_at"])
            if verified > now - REVERIFY_AFTER:
                trusted = min(state["sealed_through"], seal_line)
        cached = self._cached_dirs()
        recent = [
            h
            for h in _hours(
                _hour_id(now - SEAL_AFTER + timedelta(hours=1)), _hour_id(now + ARRIVAL_SLACK)
            )
            if _in_range(h, first, last)
        ]
        list_sealed = trusted is None or trusted < seal_line
        newest = _hour_id(now + ARRIVAL_SLACK)
        with ThreadPoolExecutor(min(self.max_workers, len(recent) + 2)) as pool:
            sealed_job = pool.submit(self._list_sealed, trusted, seal_line) if list_sealed else None
            recent_jobs = [
                pool.submit(self._list_hour, h, self._manifest(cached.get(h))) for h in recent
            ]
            # hours after the recent ones: none, unless the writer's clock runs ahead of
            # ours (a local mode whose clock was moved forward); one call to be sure
            future_job = (
                pool.submit(self._list_sealed, newest, "9999/99/99/99")
                if last is None or last > newest
                else None
            )
            sealed = sealed_job.result() if sealed_job else {}
            recent_hours = [job.result() for job in recent_jobs]
            if future_job is not None:
                recent += [h for h in future_job.result() if _in_range(h, first, last)]
                recent_hours += [
                    hour for h, hour in future_job.result().items() if _in_range(h, first, last)
                ]

        # the hours of the range, in order: listed now, or sealed and trusted
        wanted: dict[str, _Hour | Path] = {}
        for h, folder in cached.items():
            if trusted is not None and h <= trusted and _in_range(h, first, last):
                listed, current = self._trusted_hour(folder, h)
                if listed is not None:
                    wanted[h] = listed
                elif current is not None:
                    wanted[h] = current
        for h, hour in sealed.items():
            if _in_range(h, first, last):
                wanted[h] = hour
            elif self._manifest(cached.get(h)) != hour.objects:
                # out of the range: not downloaded now, but remembered, so that the
                # hour is trusted (and downloaded when a query needs it)
                _write_listing(self.root / hour.dirname, hour)
        for hour in recent_hours:
            if hour.objects:
                wanted[hour.hour_id] = hour
        # hours gone from S3
        gone = [
            folder
            for h, folder in cached.items()
            if (
                list_sealed
                and (trusted is None or h > trusted)
                and h <= seal_line
                and h not in sealed
            )
            or (h in recent and h not in wanted)
        ]
        files = self._build_all([wanted[h] for h in sorted(wanted)])
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        if list_sealed:
            verified_at = now
            if trusted is not None and state is not None:
                verified_at = datetime.fromisoformat(state["verified_at"])
            self._write_state(sealed_through=seal_line, verified_at=verified_at)
        self.refresh = False
        return files

    def _build_all(self, hours: list[_Hour | Path]) -> list[Path]:
        """Each hour's Parquet file, built from the objects not cached yet."""
        staging_root = self.root / ".staging"
        staging_root.mkdir(exist_ok=True)
        _remove_stale(staging_root)
        run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=staging_root))
        files: dict[int, Path] = {}
        builds: list[_Build] = []
        index: dict[int, int] = {}  # id(build) -> position
        self.downloaded = 0
        try:
            for i, item in enumerate(hours):
                if isinstance(item, Path):
                    files[i] = item
                    continue
                target = self.root / item.dirname / f"{item.digest}.parquet"
                if target.exists():
                    files[i] = target
                    continue
                base, have = self._base_of(item)
                missing = [k for k in sorted(item.objects) if k not in have]
                build = _Build(
                    hour=item,
                    base=base,
                    staging=run_dir / f"{item.dirname}.jsonl",
                    missing=missing,
                    remaining=len(missing),
                )
                builds.append(build)
                index[id(build)] = i
            if builds:
                for build, path in self._download_and_build(builds, run_dir):
                    files[index[id(build)]] = path
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        return [files[i] for i in sorted(files)]

    def _client(self) -> S3Client:
        with self._lock:
            if self._s3 is None:
                self._s3 = self._factory()
            return self._s3

    def _list_sealed(self, after: str | None, through: str) -> dict[str, _Hour]:
        """Every object of the hours in (after, through]: one listing, in key order."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
        if after:
            # `…/HH0` sorts after every key of hour HH (`…/HH/…`) and before the next hour
            kwargs["StartAfter"] = f"{self.prefix}{after}0"
        hours: dict[str, _Hour] = {}
        for obj in self._list_objects(kwargs):
            hour_id = self._hour_of(obj["Key"])
            if hour_id is None:
                continue  # outside the archive's layout
            if hour_id > through:
                break
            hour = hours.setdefault(hour_id, _Hour(hour_id))
            hour.objects[obj["Key"]] = _etag(obj)
            hour.sizes[obj["Key"]] = int(obj.get("Size", 0))
        return hours

    def _list_hour(self, hour_id: str, known: dict[str, str] | None) -> _Hour:
        """A recent hour's objects: listed in full, or, when the cache knows many, from
        its last TAIL_RELIST keys on (the earlier ones are taken as they were)."""
        hour = _Hour(hour_id)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": f"{self.prefix}{hour_id}/"}
        if known and len(known) > TAIL_RELIST:
            pivot = sorted(known)[-TAIL_RELIST]
            kwargs["StartAfter"] = pivot
            hour.objects.update({k: e for k, e in known.items() if k <= pivot})
        for obj in self._list_objects(kwargs):
            if obj["Key"].endswith("/"):
                continue  # a folder marker
            hour.objects[obj["Key"]] = _etag(obj)
            hour.sizes[obj["Key"]] = int(obj.get("Size", 0))
        return hour

    def _list_objects(self, kwargs: dict[str, Any]) -> Iterator[ObjectTypeDef]:
        try:
            for page in self._client().get_paginator("list_objects_v2").paginate(**kwargs):
                yield from page.get("Contents", [])
        except Exception as err:
            raise _s3_error(err, f"cannot list s3://{self.bucket}/{kwargs['Prefix']}") from err

    def _hour_of(self, key: str) -> str | None:
        rel = key[len(self.prefix) :]
        hour_id = rel[:13]
        return hour_id if rel[13:14] == "/" and HOUR_RE.match(hour_id) and len(rel) > 14 else None

    def _trusted_hour(self, folder: Path, hour_id: str) -> tuple[_Hour | None, Path | None]:
        """A sealed hour's listing and current file, read again only when its folder
        changed (a file added, replaced or removed there changes the folder's times):
        a warm query over months of hours stats each folder instead of reading it."""
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            return None, None
        stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        known = self._hour_folders.get(folder)
        if known is not None and known[0] == stamp:
            return known[1], known[2]
        listed, current = _read_listing(folder, hour_id), _current_file(folder)
        self._hour_folders[folder] = (stamp, listed, current)
        return listed, current

    def _cached_dirs(self) -> dict[str, Path]:
        """The hour folders of the cache, listed again only when the cache's folder
        changed (an hour folder added or removed changes its times)."""
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size)
        if self._root_listing is not None and self._root_listing[0] == stamp:
            return dict(self._root_listing[1])
        out: dict[str, Path] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.root):
                if entry.is_dir() and DIR_RE.match(entry.name):
                    out[entry.name.replace("-", "/")] = Path(entry.path)
        self._root_listing = (stamp, dict(out))
        return out

    def _manifest(self, folder: Path | None) -> dict[str, str] | None:
        """The (key, ETag) of the hour's current cached file."""
        current = _current_file(folder) if folder else None
        if current is None:
            return None
        try:
            pairs = json.loads(current.with_suffix(".json").read_text())["objects"]
            return {str(k): str(e) for k, e in pairs}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.root / "state.json").read_text())
            datetime.fromisoformat(state["verified_at"])
            if not HOUR_RE.match(state["sealed_through"]):
                return None
            return dict(state)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_state(self, *, sealed_through: str, verified_at: datetime) -> None:
        """Every hour up to `sealed_through` is in the cache as S3 listed it (an hour
        not cached had no objects); the whole archive was last listed at verified_at."""
        tmp = self.root / f".state.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_text(
            json.dumps({"sealed_through": sealed_through, "verified_at": verified_at.isoformat()})
        )
        os.replace(tmp, self.root / "state.json")

    def _base_of(self, hour: _Hour) -> tuple[Path | None, set[str]]:
        """The hour's cached file whose objects are all still listed unchanged (the
        largest such), and those objects."""
        best: tuple[Path | None, set[str]] = (None, set())
        folder = self.root / hour.dirname
        if not folder.is_dir():
            return best
        for manifest in folder.glob("*.json"):
            parquet = manifest.with_suffix(".parquet")
            try:
                pairs = json.loads(manifest.read_text())["objects"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not parquet.exists():
                continue
            if all(hour.objects.get(k) == e for k, e in pairs) and len(pairs) > len(best[1]):
                best = (parquet, {k for k, _ in pairs})
        return best

    def _download_and_build(
        self, builds: list[_Build], run_dir: Path
    ) -> Iterator[tuple[_Build, Path]]:
        """Downloads the builds' missing objects (in parallel, a bounded number in
        flight) into each hour's staging file, and writes an hour's Parquet file as soon
        as its last object is in."""
        todo: deque[tuple[_Build, str]] = deque((b, key) for b in builds for key in b.missing)
        total = len(todo)
        done = 0
        self.downloaded = 0
        con = self._connect(spill=run_dir)
        try:
            for build in builds:
                if build.remaining == 0:
                    yield build, self._write_hour(con, build)
            if not todo:
                return
            client = self._client()
            window = self.max_workers * 2
            with ThreadPoolExecutor(self.max_workers) as pool:
                in_flight: dict[Future[tuple[IO[bytes] | None, int]], tuple[_Build, str]] = {}
                try:
                    while todo or in_flight:
                        while todo and len(in_flight) < window:
                            build, key = todo.popleft()
                            size = build.hour.sizes.get(key, 1)
                            in_flight[pool.submit(self._fetch, client, key, size)] = (build, key)
                        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                        for future in finished:
                            build, key = in_flight.pop(future)
                            body, lines = future.result()
                            self.downloaded += 1
                            _append(build, key, body, lines)
                            done += 1
                            if self.progress:
                                self.progress(done, total)
                            if build.remaining == 0:
                                yield build, self._write_hour(con, build)
                except BaseException:
                    for future in in_flight:
                        future.cancel()
                    raise
        finally:
            con.close()

    def _fetch(self, client: S3Client, key: str, size: int) -> tuple[IO[bytes] | None, int]:
        """One object, decompressed when it is GZIP, as a file positioned at 0 (None when
        empty) and its number of lines (a missing final newline is added)."""
        if size == 0:
            return None, 0
        try:
            body = client.get_object(Bucket=self.bucket, Key=key)["Body"]
            out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
            lines = 0
            last = b""
            gunzip: _Gunzip | None = None
            first = True
            for chunk in iter(lambda: body.read(CHUNK), b""):
                if first:
                    first = False
                    gunzip = _Gunzip() if chunk[:2] == GZIP_MAGIC else None
                for data in gunzip.feed(chunk) if gunzip is not None else (chunk,):
                    out.write(data)
                    lines += data.count(b"\n")
                    last = data[-1:]
            tail = gunzip.close() if gunzip is not None else b""
            if tail:
                out.write(tail)
                lines += tail.count(b"\n")
                last = tail[-1:]
            if last and last != b"\n":
                out.write(b"\n")
                lines += 1
            if not last:
                out.close()
                return None, 0
            out.seek(0)
            return out, lines
        except QueryError:
            raise
        except zlib.error as err:
            raise QueryError(
                f"s3://{self.bucket}/{key} starts like GZIP but does not decompress: {err}"
            ) from err
        except Exception as err:
            raise _s3_error(err, f"cannot read s3://{self.bucket}/{key}") from err

    def _write_hour(self, con: duckdb.DuckDBPyConnection, build: _Build) -> Path:
        """The hour's new Parquet file: the base file's rows and the staged lines."""
        if build.out is not None:
            build.out.close()
            build.out = None
        hour = build.hour
        folder = self.root / hour.dirname
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{hour.digest}.parquet"
        tmp = folder / f".{hour.digest}.{os.getpid()}.{threading.get_ident()}.tmp"
        cols = ", ".join(_q(c) for c in COLUMN_NAMES)
        parts = []
        params: list[Any] = []
        if build.base is not None:
            parts.append(f"SELECT {cols} FROM read_parquet(?)")
            params.append(str(build.base))
        if build.lines:
            parts.append(f"SELECT {cols} FROM {_read_json_sql()}")
            params.append(str(build.staging))
        if not parts:
            parts.append(f"SELECT {cols} FROM archive_empty")
            con.execute(f"CREATE TEMP TABLE IF NOT EXISTS archive_empty ({_columns_ddl()})")
        try:
            con.execute(
                f"COPY ({' UNION ALL '.join(parts)}) TO {_literal(str(tmp))} "
                "(FORMAT parquet, COMPRESSION zstd)",
                params,
            )
        except duckdb.Error as err:
            tmp.unlink(missing_ok=True)
            raise QueryError(
                f"cannot read the archive's hour {hour.hour_id or '(top)'}: "
                f"{_which_object(build)}{_first_line(err)}"
            ) from err
        manifest = target.with_suffix(".json")
        manifest.write_text(json.dumps({"objects": sorted(hour.objects.items())}))
        os.replace(tmp, target)
        for old in folder.iterdir():
            if old.stem != hour.digest and not old.name.startswith("."):
                old.unlink(missing_ok=True)
        build.staging.unlink(missing_ok=True)
        return target

    # ---- cache -> DuckDB ----------------------------------------------------------
    def _connect(self, spill: Path | None = None) -> duckdb.DuckDBPyConnection:
        spill_dir = spill or self.root / ".spill"
        spill_dir.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(
            ":memory:",
            config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
                "allow_community_extensions": False,
                "temp_directory": str(spill_dir),
            },
        )
        con.execute("SET TimeZone = 'UTC'")
        return con

    def _load(
        self,
        con: duckdb.DuckDBPyConnection,
        files: list[Path],
        since: datetime | None,
        until: datetime | None,
        erased: tuple[str, ...],
    ) -> None:
        """`archive_raw` (the range's lines, but the erased users'), and `events` over
        it: a table holding what the view EVENTS_VIEW_SQL selects, computed once for
        every query on this database instead of once per query."""
        con.execute(f"CREATE TABLE archive_raw ({_columns_ddl()})")
        if files:
            where, params = [], []
            if since is not None:
                where.append("received_at >= ?")
                params.append(iso_ms(since))
            if until is not None:
                where.append("received_at <= ?")
                params.append(iso_ms(until))
            cols = ", ".join(_q(c) for c in COLUMN_NAMES)
            try:
                con.execute(
                    f"INSERT INTO archive_raw SELECT {cols} FROM read_parquet(?)"
                    + (f" WHERE {' AND '.join(where)}" if where else ""),
                    [[str(f) for f in files], *params],
                )
            except duckdb.Error as err:
                raise QueryError(f"cannot read the archive's cache: {_first_line(err)}") from err
        if erased:  # erased users: gone from every query (the objects are rewritten later)
            con.execute("CREATE TEMP TABLE erased_ids (h VARCHAR)")
            con.executemany("INSERT INTO erased_ids VALUES (?)", [[d] for d in erased])
            con.execute(
                "DELETE FROM archive_raw WHERE sha256(coalesce(user_id, '')) IN "
                "(SELECT h FROM erased_ids) OR sha256(coalesce(anonymous_id, '')) IN "
                "(SELECT h FROM erased_ids)"
            )
            con.execute("DROP TABLE erased_ids")
        con.execute(f"CREATE TABLE events AS {EVENTS_VIEW_SQL}")


# ---- helpers ----------------------------------------------------------------------


def _default_s3_factory(
    endpoint_url: str | None, region: str | None, max_workers: int
) -> S3ClientFactory:
    def make() -> S3Client:
        import boto3
        from botocore.config import Config

        from nudge.adapters.aws import region as default_region

        return boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region or default_region(),
            config=Config(
                retries={"mode": "standard", "max_attempts": 5},
                max_pool_connections=max(10, max_workers),
            ),
        )

    return make


def _hour_id(at: datetime) -> str:
    return f"{at.astimezone(UTC):%Y/%m/%d/%H}"


def _hours(first: str, last: str) -> list[str]:
    """The hour ids from first to last, both included."""
    at = datetime.strptime(first, "%Y/%m/%d/%H").replace(tzinfo=UTC)
    end = datetime.strptime(last, "%Y/%m/%d/%H").replace(tzinfo=UTC)
    out = []
    while at <= end:
        out.append(_hour_id(at))
        at += timedelta(hours=1)
    return out


def _in_range(hour_id: str, first: str | None, last: str | None) -> bool:
    return (first is None or hour_id >= first) and (last is None or hour_id <= last)


def _etag(obj: ObjectTypeDef) -> str:
    return str(obj.get("ETag", "")).strip('"')


LISTING = "listing.json"


def _write_listing(folder: Path, hour: _Hour) -> None:
    """A sealed hour's objects as listed, for an hour not downloaded yet (or whose
    cached file is out of date): `listing.json` beside its Parquet files."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".listing.{os.getpid()}.{threading.get_ident()}.tmp"
    tmp.write_text(json.dumps({"objects": hour.objects, "sizes": hour.sizes}))
    os.replace(tmp, folder / LISTING)


def _read_listing(folder: Path, hour_id: str) -> _Hour | None:
    try:
        data = json.loads((folder / LISTING).read_text())
        return _Hour(hour_id, dict(data["objects"]), dict(data["sizes"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _current_file(folder: Path) -> Path | None:
    """The hour's cached Parquet file (the newest, should a concurrent run have left
    two); one without its manifest does not count."""
    best: tuple[float, Path] | None = None
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(folder):
            if entry.name.endswith(".parquet") and not entry.name.startswith("."):
                path = Path(entry.path)
                if path.with_suffix(".json").exists():
                    mtime = entry.stat().st_mtime
                    if best is None or mtime > best[0]:
                        best = (mtime, path)
    return best[1] if best else None


class _Gunzip:
    """Streaming GZIP decompression (several members included, as `gzip` allows)."""

    def __init__(self) -> None:
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._fed = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._fed = True
            out = self._d.decompress(data)
            if out:
                yield out
            if not self._d.eof:
                return
            data = self._d.unused_data
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            self._fed = False

    def close(self) -> bytes:
        if self._fed and not self._d.eof:
            raise zlib.error("the GZIP stream is truncated")
        return self._d.flush()


def _append(build: _Build, key: str, body: IO[bytes] | None, lines: int) -> None:
    build.remaining -= 1
    if body is None:
        return
    with body:
        if build.out is None:
            build.out = open(build.staging, "ab")  # noqa: SIM115
        build.starts.append((build.lines + 1, key))
        shutil.copyfileobj(body, build.out, CHUNK)
    build.lines += lines


def _remove_stale(staging_root: Path) -> None:
    """Staging folders of runs that died (a killed CLI, a Lambda timeout)."""
    cutoff = time.time() - STALE_STAGING_SECONDS
    for folder in staging_root.iterdir():
        with contextlib.suppress(OSError):
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)


def _columns_ddl() -> str:
    return ", ".join(f"{_q(c)} {t}" for c, t, _ in ARCHIVE_COLUMNS)


def _read_json_sql() -> str:
    columns = "{" + ", ".join(f"{_literal(c)}: {_literal(t)}" for c, t, _ in ARCHIVE_COLUMNS) + "}"
    return f"read_json(?, format = 'newline_delimited', columns = {columns}, compression = 'none')"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _first_line(err: BaseException) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def _which_object(build: _Build) -> str:
    """`object KEY, line N: ` for the first staged line that is not a JSON object (found
    again in Python, only after DuckDB failed: its line numbers are not reliable)."""
    if not build.starts or not build.staging.exists():
        return ""
    with open(build.staging, "rb") as staged:
        for number, text in enumerate(staged, start=1):
            if not text.strip():
                continue
            try:
                ok = isinstance(json.loads(text), dict)
            except ValueError:
                ok = False
            if not ok:
                start, key = max((s, k) for s, k in build.starts if s <= number)
                return f"object {key}, line {number - start + 1}: "
    return ""


def _s3_error(err: Exception, doing: str) -> QueryError:
    if isinstance(err, ClientError):
        code = err.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return QueryError(f"{doing}: the archive bucket does not exist")
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId", "ExpiredToken"):
            return QueryError(f"{doing}: access denied ({code})")
        return QueryError(f"{doing}: {code or err}")
    return QueryError(f"{doing}: {err}")


def _one_statement(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    try:
        statements = con.extract_statements(sql)
    except _INVALID_QUERY as err:
        raise QuerySyntaxError(str(err)) from err
    except duckdb.Error as err:
        raise QuerySyntaxError(str(err)) from err
    statement = single_statement(statements)
    if statement.type not in ALLOWED_STATEMENTS:
        raise QueryForbiddenError(
            f"only queries may run (SELECT, WITH, FROM, DESCRIBE, SUMMARIZE, PIVOT, "
            f"EXPLAIN); this is a {statement.type.name} statement"
        )
    return statement


def _run(con: duckdb.DuckDBPyConnection, statement: Any) -> QueryResult:
    try:
        cursor = con.execute(statement)
        if cursor.description is None:
            return QueryResult(columns=[], rows=[], types=[])
        columns = [d[0] for d in cursor.description]
        types = [str(d[1]) for d in cursor.description]
        raw = cursor.fetchall()
    except _INVALID_QUERY as err:
        raise QuerySyntaxError(str(err)) from err
    except duckdb.PermissionException as err:
        raise QueryForbiddenError(str(err)) from err
    except duckdb.InterruptException as err:
        raise QueryTimeoutError("the query ran too long and was cancelled") from err
    except duckdb.Error as err:
        raise QueryError(str(err)) from err
    except (ValueError, OverflowError, TypeError) as err:  # a value Python cannot hold
        raise QueryError(f"cannot return the result: {err}") from err
    json_cols = [i for i, t in enumerate(types) if t == "JSON"]
    json_list_cols = [i for i, t in enumerate(types) if t == "JSON[]"]
    rows: list[list[Any]] = []
    for r in raw:
        row = list(r)
        for i in json_cols:
            row[i] = parse_json_value(row[i])
        for i in json_list_cols:
            if row[i] is not None:
                row[i] = [parse_json_value(v) for v in row[i]]
        rows.append(row)
    return QueryResult(columns=columns, rows=rows, types=types)
