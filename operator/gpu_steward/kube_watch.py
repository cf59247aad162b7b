"""Watch-fed, in-memory projections of the kinds the evaluation passes read (kube.py's sibling: the only
other module that talks to the API).

One ``Watch`` per kind: a paginated LIST (pages of ``page_size``, each decoded and projected before the
next is read, so the initial listing of 40,000 pods never holds the whole list), then a WATCH from the
list's resourceVersion, decoded one event line at a time. A watch that ends (server timeout, dropped
connection) resumes from the last resourceVersion seen; one that is too old (410 Gone) lists again, and
the list tells the sink which objects still exist. Each kind keeps only a projection of each object (the
fields a decision reads), never whole bodies. A steady cluster costs no reads: the passes read these
projections.

``Watches`` starts a watch the first time a kind is asked for. A kind the cluster does not serve (its CRD
is not installed) reads as empty and is looked up again when a CRD is installed or changed (``CrdEvents``:
a watch of the CRDs' metadata), so a CRD installed later is picked up without a restart and without
polling discovery; until that watch has listed, every ``MISSING_KIND_RECHECK_SECONDS``.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import structlog
from kubernetes import client
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from gpu_steward.kube import JSON, Kube

log = structlog.get_logger(__name__)

Project = Callable[[JSON], Any]


class Sink(Protocol):
    def apply(self, event_type: str, obj: JSON) -> None: ...

    def relisted(self, uids: set[str]) -> None: ...


class Gone(Exception):
    """The watch's resourceVersion is too old (410): list again."""


def iter_lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Complete lines of a chunked stream (a watch sends one JSON event per line), as they arrive."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


class Watch:
    """List, then watch, one kind into ``sink``, in a daemon thread, until ``stop()``."""

    RETRY_SECONDS = 2.0

    def __init__(self, api_client: client.ApiClient, path: str, sink: Sink, *, name: str,
                 label_selector: str | None = None, page_size: int = 500, timeout_seconds: int = 300,
                 list_paths: Callable[[], list[str]] | None = None, accept: dict[str, str] | None = None) -> None:
        self.api_client, self.path, self.sink, self.name = api_client, path, sink, name
        self.accept = accept or {}  # by request ("list", "watch"): the Accept header, JSON when not given
        # Sharded mode: list only these collections (the shard's namespaces), then watch ``path`` whole.
        self.list_paths = list_paths
        self._events_since_list = 0
        self._whole = False  # listing by parts fell behind the server's history once: list whole from then on
        self.label_selector, self.page_size, self.timeout_seconds = label_selector, page_size, timeout_seconds
        self.synced = threading.Event()  # the first full list has been applied
        self.lists = 0  # LIST requests sent (pages included): the scale benchmark reports them
        self.watches = 0
        self._stop = threading.Event()
        self._resp: Any = None
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        resp = self._resp
        if resp is not None:  # unblock a read waiting on the socket (best effort; the thread is a daemon)
            with contextlib.suppress(Exception):
                resp.shutdown() if hasattr(resp, "shutdown") else resp.close()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # ---- HTTP ----------------------------------------------------------------------------------
    def _get(self, params: dict[str, Any], read_timeout: float, path: str | None = None) -> Any:
        query = {k: v for k, v in params.items() if v is not None}
        if self.label_selector:
            query["labelSelector"] = self.label_selector
        method, url, headers, _, _ = self.api_client.param_serialize(
            "GET", path or self.path, query_params=list(query.items()),
            header_params={"Accept": self.accept.get("watch" if "watch" in query else "list", "application/json")},
            auth_settings=["BearerToken"])
        resp = self.api_client.call_api(method, url, header_params=headers,
                                        _request_timeout=(10.0, read_timeout)).response
        if not 200 <= resp.status <= 299:
            body = resp.data[:300]
            resp.release_conn()
            if resp.status == 410:
                raise Gone()
            raise client.ApiException(status=resp.status, reason=f"{resp.reason}: {body!r}")
        return resp

    # ---- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list()
                    self._events_since_list = 0
                    self.synced.set()
                version = self._watch(version)
            except Gone:
                log.info("watch expired: listing again", kind=self.name)
                if self.list_paths is not None and not self._whole and self._events_since_list == 0:
                    # The version taken before the parts was gone before the watch began (a busy server
                    # compacted its history while we listed): listing by parts again could keep losing.
                    log.warning("listing by namespace fell behind; listing whole from now on", kind=self.name)
                    self._whole = True
                version = None
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("watch failed; retrying", kind=self.name, error=f"{type(exc).__name__}: {exc}"[:300])
                self._stop.wait(self.RETRY_SECONDS)

    def _list(self) -> str:
        """Apply a full list; the resourceVersion to watch from."""
        uids: set[str] = set()
        if self.list_paths is None or self._whole:
            version = self._list_one(self.path, uids)
            self.sink.relisted(uids)
            return version
        # Parts of the collection, listed one by one, then the whole watched from a version taken before the
        # first part: every change after it is seen (those during the listing twice, which applying absorbs),
        # without comparing resourceVersions (they are opaque).
        self.lists += 1
        resp = self._get({"limit": 1}, read_timeout=60.0)
        try:
            version = str((json.loads(resp.data).get("metadata") or {}).get("resourceVersion") or "")
        finally:
            resp.release_conn()
        for path in self.list_paths():
            self._list_one(path, uids)
        self.sink.relisted(uids)
        return version

    def _list_one(self, path: str, uids: set[str]) -> str:
        """Apply one collection's objects, page by page, adding their uids; its resourceVersion."""
        cont: str | None = None
        while True:
            self.lists += 1
            resp = self._get({"limit": self.page_size, "continue": cont}, read_timeout=60.0, path=path)
            try:
                page = json.loads(resp.data)
            finally:
                resp.release_conn()
            # Items of built-in lists come without apiVersion/kind (a JobList's Jobs): projections need them.
            api_version, list_kind = page.get("apiVersion"), str(page.get("kind") or "")
            for obj in page.get("items") or []:
                obj.setdefault("apiVersion", api_version)
                obj.setdefault("kind", list_kind.removesuffix("List"))
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    uids.add(uid)
                    self.sink.apply("ADDED", obj)
            del page["items"]
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                return str(meta.get("resourceVersion") or "")

    def _watch(self, version: str) -> str:
        self.watches += 1
        resp = self._get({"watch": "true", "resourceVersion": version, "allowWatchBookmarks": "true",
                          "timeoutSeconds": self.timeout_seconds}, read_timeout=self.timeout_seconds + 30.0)
        self._resp = resp
        try:
            for line in iter_lines(resp.stream(65536, decode_content=True)):
                if self._stop.is_set():
                    break
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Gone()
                    raise client.ApiException(status=obj.get("code"), reason=str(obj.get("message"))[:300])
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                if kind != "BOOKMARK":
                    self.sink.apply(kind, obj)
                self._events_since_list += 1
        finally:
            self._resp = None
            resp.release_conn()
        return version


class ObjectCache:
    """One kind's projections by uid, and by (namespace, name). A ``Sink`` for ``Watch``."""

    def __init__(self, project: Project, served: bool = True) -> None:
        self.project = project
        self.served = served
        self.watch: Watch | None = None
        self._lock = threading.Lock()
        self._by_uid: dict[str, Any] = {}
        self._by_name: dict[tuple[str, str], str] = {}

    def apply(self, event_type: str, obj: JSON) -> None:
        meta = obj.get("metadata") or {}
        uid, key = meta.get("uid"), (meta.get("namespace") or "", meta.get("name") or "")
        if not uid:
            return
        value = None if event_type == "DELETED" else self.project(obj)
        with self._lock:
            if value is None:
                self._by_uid.pop(uid, None)
                if self._by_name.get(key) == uid:
                    del self._by_name[key]
            else:
                self._by_uid[uid] = value
                self._by_name[key] = uid

    def relisted(self, uids: set[str]) -> None:
        with self._lock:
            for uid in set(self._by_uid) - uids:
                del self._by_uid[uid]
            self._by_name = {k: u for k, u in self._by_name.items() if u in self._by_uid}

    def get(self, namespace: str | None, name: str) -> Any:
        with self._lock:
            uid = self._by_name.get((namespace or "", name))
            return self._by_uid.get(uid) if uid is not None else None

    def items(self) -> list[Any]:
        with self._lock:
            return list(self._by_uid.values())

    def wait(self, timeout: float) -> bool:
        """Whether the first full list is in (at once for a kind the cluster does not serve)."""
        return self.watch is None or self.watch.synced.wait(timeout)


# Metadata only: the apiserver answers a list as PartialObjectMetadataList and a watch's objects as
# PartialObjectMetadata for these Accept headers (a watch asked for the list form sends nothing at all).
METADATA_ONLY = {"list": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json",
                 "watch": "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"}


class CrdEvents:
    """A ``Sink`` for the CRD watch: any CRD added or changed (a new one, a new version served) makes the kinds
    not served so far be looked up again; after its first list, missing kinds are no longer polled."""

    def __init__(self, watches: Watches) -> None:
        self.watches = watches

    def apply(self, event_type: str, obj: JSON) -> None:
        if event_type in ("ADDED", "MODIFIED") and self.watches.kube.crds_watched:
            self.watches.forget_missing()

    def relisted(self, uids: set[str]) -> None:
        self.watches.forget_missing()  # what changed while not watching
        self.watches.kube.crds_watched = True


class Watches:
    """The process's watches, one per (apiVersion, kind), started when first asked for."""

    MISSING_KIND_RECHECK_SECONDS = 15.0

    def __init__(self, kube: Kube, *, page_size: int = 500) -> None:
        self.kube, self.page_size = kube, page_size
        self._lock = threading.Lock()
        self._caches: dict[tuple[str, str, str | None], ObjectCache] = {}
        self._missing: dict[tuple[str, str, str | None], float] = {}
        self._extra: list[Watch] = []

    def path(self, api_version: str, kind: str, namespace: str | None = None) -> str | None:
        """The collection's URL path, or None when the cluster does not serve the kind (discovery)."""
        try:
            res = self.kube._resource(api_version, kind)
        except ResourceNotFoundError:
            return None
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        if namespace and res.namespaced:
            return f"{base}/namespaces/{urllib.parse.quote(namespace)}/{res.name}"
        return f"{base}/{res.name}"

    def cache(self, api_version: str, kind: str, project: Project, namespace: str | None = None) -> ObjectCache:
        """The kind's cache (cluster-wide, or one namespace's), its watch started on first use. A kind not
        served is an empty cache, looked up again after ``MISSING_KIND_RECHECK_SECONDS``."""
        key = (api_version, kind, namespace)
        with self._lock:
            found = self._caches.get(key)
            if found is not None:
                return found
            missed = self._missing.get(key)
            if missed is not None and (self.kube.crds_watched
                                       or time.monotonic() - missed < self.MISSING_KIND_RECHECK_SECONDS):
                return ObjectCache(project, served=False)
            path = self.path(api_version, kind, namespace)
            if path is None:
                self._missing[key] = time.monotonic()
                return ObjectCache(project, served=False)
            self._missing.pop(key, None)
            cache = ObjectCache(project)
            cache.watch = Watch(self.kube.api_client, path, cache, name=f"{kind}.{api_version}",
                                page_size=self.page_size).start()
            self._caches[key] = cache
            log.info("watching", kind=kind, api_version=api_version, namespace=namespace)
            return cache

    def watch_into(self, api_version: str, kind: str, sink: Sink, namespace: str | None = None,
                   list_namespaces: Callable[[], list[str]] | None = None) -> Watch | None:
        """A watch of the kind into a sink of the caller's (the GPU pod index), or None when not served.
        ``list_namespaces``: list only these namespaces' objects (asked at each full list), watch them all."""
        path = self.path(api_version, kind, namespace)
        if path is None:
            return None
        list_paths = None
        if list_namespaces is not None:
            def list_paths() -> list[str]:
                return [p for ns in list_namespaces() if (p := self.path(api_version, kind, ns)) is not None]
        w = Watch(self.kube.api_client, path, sink, name=f"{kind}.{api_version}", page_size=self.page_size,
                  list_paths=list_paths).start()
        with self._lock:
            self._extra.append(w)
        return w

    def serve_lists(self, api_version: str, kind: str, project: Project, namespace: str | None = None) -> None:
        """Let ``Kube.list`` of this collection answer from a watch (once its first list is in)."""
        cache = self.cache(api_version, kind, project, namespace)
        if cache.watch is not None and cache.wait(30.0):
            self.kube.served_lists[(api_version, kind, namespace)] = cache.items

    def forget_missing(self) -> None:
        with self._lock:
            self._missing.clear()
        self.kube.forget_missing()

    def watch_crds(self) -> Watch | None:
        """Watch the CRDs' metadata (names only: their schemas can be megabytes) so that a kind installed later
        is looked up again at once, and never polled for meanwhile."""
        path = self.path("apiextensions.k8s.io/v1", "CustomResourceDefinition")
        if path is None:
            return None
        w = Watch(self.kube.api_client, path, CrdEvents(self), name="crds", page_size=self.page_size,
                  accept=METADATA_ONLY).start()
        with self._lock:
            self._extra.append(w)
        return w

    def held(self, api_version: str, kind: str, namespace: str | None, name: str,
             scope: str | None = None) -> Any:
        """A copy of the object as a listed watch of the collection (``scope``: its namespace, None for all)
        last delivered it; None when no such watch holds it (not started, not listed yet, or no such object:
        the caller reads it from the API then)."""
        with self._lock:
            cache = self._caches.get((api_version, kind, scope))
        if cache is None or cache.watch is None or not cache.watch.synced.is_set():
            return None
        found = cache.get(namespace, name)
        return copy.deepcopy(found) if found is not None else None

    def all(self) -> list[Watch]:
        with self._lock:
            return [c.watch for c in self._caches.values() if c.watch is not None] + list(self._extra)

    def stop(self) -> None:
        self.kube.served_lists.clear()
        self.kube.crds_watched = False  # no watch tells of new CRDs any more: look missing kinds up by time
        for w in self.all():
            w.stop()
