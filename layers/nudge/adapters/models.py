"""The artifact store on S3: one gzip-compressed JSON object per artifact name, under
`models/` of the archive bucket (`models/<name>.json.gz`).

The train function saves; the functions that use an artifact (api, deliver) load it at
most once per cache period per container: a load within `cache_seconds` of the last one
returns the copy in memory, and a later one asks S3 with the copy's ETag (If-None-Match),
so an unchanged artifact costs a 304 and no transfer. An artifact never saved loads as
None (and that answer is cached too)."""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import ClientError

from nudge.adapters.aws import client
from nudge.constants import MODELS_PREFIX
from nudge.domain.catalog import ARTIFACT as CATALOG_ARTIFACT
from nudge.domain.catalog import Catalog
from nudge.domain.ports import ModelStore
from nudge.domain.recommend import ItemModel

ITEMS_ARTIFACT = "items"  # nudge.learn.train.ITEMS

DEFAULT_CACHE_SECONDS = 300.0


class S3ModelStore:
    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = MODELS_PREFIX,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        # name -> (loaded at, ETag, document)
        self._cache: dict[str, tuple[float, str | None, dict[str, Any] | None]] = {}
        self.gets = 0  # GetObject requests made (tests and metrics)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}.json.gz"

    def load(self, name: str) -> dict[str, Any] | None:
        now = self._monotonic()
        with self._lock:
            hit = self._cache.get(name)
        if hit is not None and now - hit[0] < self.cache_seconds:
            return hit[2]
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(name)}
        if hit is not None and hit[1]:
            kwargs["IfNoneMatch"] = hit[1]
        self.gets += 1
        try:
            resp = client("s3").get_object(**kwargs)
        except ClientError as err:
            code = str(err.response.get("Error", {}).get("Code", ""))
            status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code == "NoSuchKey":
                entry: tuple[float, str | None, dict[str, Any] | None] = (now, None, None)
            elif (code == "304" or status == 304) and hit is not None:
                entry = (now, hit[1], hit[2])
            else:
                raise
        else:
            doc = json.loads(gzip.decompress(resp["Body"].read()))
            entry = (now, resp.get("ETag"), doc if isinstance(doc, dict) else None)
        with self._lock:
            self._cache[name] = entry
        return entry[2]

    def save(self, name: str, doc: dict[str, Any]) -> None:
        body = gzip.compress(
            json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode(),
            compresslevel=6,
        )
        resp = client("s3").put_object(
            Bucket=self.bucket,
            Key=self.key(name),
            Body=body,
            ContentType="application/json",
            ContentEncoding="gzip",
        )
        with self._lock:
            self._cache[name] = (self._monotonic(), resp.get("ETag"), doc)


class CatalogReader:
    """The catalog as the deliver and api functions read it (their `load_catalog`): the
    artifact from the store (at most once per its cache period), parsed once per document
    loaded; product id → attributes, None before training built one."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._doc: dict[str, Any] | None = None
        self._items: Mapping[str, Mapping[str, Any]] | None = None

    def __call__(self) -> Mapping[str, Mapping[str, Any]] | None:
        doc = self.store.load(CATALOG_ARTIFACT)
        if doc is None:
            return None
        if doc is not self._doc:  # a new copy: parse it once
            self._doc, self._items = doc, Catalog.from_dict(doc).items
        return self._items


class ItemsReader:
    """The recommender's item model as the api and deliver functions read it (their
    `load_items`): the `items` artifact, parsed once per document loaded; None before
    training fitted one, or when the stored one cannot be read (the profile's own items
    are recommended then)."""

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._doc: dict[str, Any] | None = None
        self._model: ItemModel | None = None

    def __call__(self) -> ItemModel | None:
        doc = self.store.load(ITEMS_ARTIFACT)
        if doc is None:
            return None
        if doc is not self._doc:  # a new copy: parse it once
            try:
                self._model = ItemModel.from_dict(doc)
            except (ValueError, KeyError, TypeError):
                self._model = None
            self._doc = doc
        return self._model


def model_readers(
    bucket: str, *, cache_seconds: float = DEFAULT_CACHE_SECONDS
) -> tuple[S3ModelStore, ItemsReader, CatalogReader]:
    """The artifact store of a function that serves the train function's work (api,
    deliver) and its two readers, sharing the store's cache."""
    store = S3ModelStore(bucket, cache_seconds=cache_seconds)
    return store, ItemsReader(store), CatalogReader(store)
