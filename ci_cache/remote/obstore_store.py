"""ObjectStore over obstore (S3 and compatibles, Azure Blob, GCS), with every failure classified and scrubbed.

obstore is imported here only, and this module only when a remote is configured: ci-cache's import
time stays what it was for everyone else.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_cache.errors import RemoteError
from ci_cache.remote import cloudenv
from ci_cache.remote.objectstore import ObjectMeta
from ci_cache.remote.scrub import Scrubber
from ci_cache.remote.settings import CREDENTIAL_VARS, RemoteConfig

if TYPE_CHECKING:
    from obstore.store import ObjectStore as RawStore

# obstore completes each awaited call from one of its runtime's threads, which briefly releases the GIL in
# the middle of handing the result to the event loop (writing to its wake-up socket). A process that exits
# in that instant finalises the interpreter under that thread, which then aborts the process (SIGABRT,
# measured with obstore 0.12: 1 exit in 4 right after a failed request). Releasing the GIL for a moment at
# exit lets such a thread finish first.
_SETTLE_AT_EXIT = 0.02
atexit.register(time.sleep, _SETTLE_AT_EXIT)

_STATUS = re.compile(r"status code: (\d{3})")
_CHUNK = 1 << 20
# What each kind tells the user to do.
HINTS = {
    "unreachable": "check remote.url/endpoint, DNS and the network; the job goes on without the remote",
    "timeout": "the remote is slow or does not answer; the job goes on without it",
    "forbidden": "the credentials lack this permission or are wrong: check {creds}",
    "not_found": "the bucket or object does not exist; check remote.url",
    "server": "the storage service failed (5xx); it is retried on the next job",
    "garbage": "the endpoint answered something that is not object storage; check remote.endpoint",
    "config": "fix the remote settings",
}


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:300]


# object_store's debug dump names the HTTP failure's kind and the OS error behind it.
_HTTP_KIND = re.compile(r"HttpError \{\s*kind: (\w+)")
_OS_MESSAGE = re.compile(r'message: "([^"]{1,120})"')
_NETWORK_KINDS = {"Connect": "unreachable", "Timeout": "timeout", "Request": "unreachable",
                  "Interrupted": "unreachable", "Decode": "garbage"}


def _kind_of(exc: BaseException, text: str, status: int | None) -> str:
    from obstore import exceptions as ox

    if isinstance(exc, FileNotFoundError) or status == 404:
        return "not_found"
    if isinstance(exc, ox.AlreadyExistsError | ox.PreconditionError) or status in (409, 412):
        return "conflict"
    if isinstance(exc, ox.PermissionDeniedError | ox.UnauthenticatedError) or status in (401, 403):
        return "forbidden"
    if status is not None and status >= 500:
        return "server"
    if isinstance(exc, ox.UnknownConfigurationKeyError | ox.InvalidPathError) or "builder error" in text:
        return "config"
    http_kind = _HTTP_KIND.search(text)
    if http_kind:
        # "Unknown" is what hyper reports for an answer that is not HTTP at all.
        return _NETWORK_KINDS.get(http_kind.group(1), "garbage")
    return "garbage"


def classify(exc: BaseException, *, op: str, key: str, where: str, scrub: Scrubber, creds: str) -> RemoteError:
    """Turn any exception from obstore into one RemoteError with a kind and a one-line, scrubbed message."""
    text = str(exc)
    first = _first_line(text)
    status_match = _STATUS.search(first)
    status = int(status_match.group(1)) if status_match else None
    kind = _kind_of(exc, text, status)
    detail = re.sub(r"^Generic \w+ error: ", "", first)
    os_message = _OS_MESSAGE.search(text)
    if os_message and os_message.group(1).lower() not in detail.lower():
        detail += f" ({os_message.group(1)})"
    hint = HINTS.get(kind, "").format(creds=creds)
    return RemoteError(f"remote {op} {key!r} at {where}: {kind.replace('_', ' ')}: {scrub(detail)}", kind=kind,
                       hint=hint)


class ObstoreStore:
    """The ObjectStore protocol over one obstore store (its prefix is the remote URL's prefix)."""

    def __init__(self, raw: RawStore, *, where: str, scrub: Scrubber, credentials: str) -> None:
        self._raw = raw
        self._where = where
        self._scrub = scrub
        self._creds = credentials

    @property
    def where(self) -> str:
        return self._where

    def _error(self, exc: BaseException, op: str, key: str) -> RemoteError:
        return classify(exc, op=op, key=key, where=self._where, scrub=self._scrub, creds=self._creds)

    def _too_big(self, key: str, max_size: int) -> RemoteError:
        """More bytes than the caller expects: a wrong or hostile answer, never read on."""
        return RemoteError(f"remote get {key!r} at {self._where}: more than the {max_size} bytes expected",
                           kind="garbage", hint=HINTS["garbage"])

    async def get(self, key: str, *, max_size: int) -> bytes:
        import obstore

        try:
            result = await obstore.get_async(self._raw, key)
            if result.meta["size"] > max_size:
                raise self._too_big(key, max_size)
            return bytes(await result.bytes_async())
        except RemoteError:
            raise
        except Exception as exc:
            raise self._error(exc, "get", key) from None

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        import obstore

        try:
            return bytes(await obstore.get_range_async(self._raw, key, start=start, end=end))
        except Exception as exc:
            raise self._error(exc, "get", key) from None

    async def get_to(self, key: str, path: Path, *, max_size: int) -> tuple[int, str]:
        import obstore

        digest = hashlib.sha256()
        size = 0
        try:
            result = await obstore.get_async(self._raw, key)
            if result.meta["size"] > max_size:
                raise self._too_big(key, max_size)
            with open(path, "xb") as out:
                async for chunk in result.stream(min_chunk_size=_CHUNK):
                    view = memoryview(chunk)
                    size += len(view)
                    if size > max_size:
                        raise self._too_big(key, max_size)
                    digest.update(view)
                    out.write(view)
        except RemoteError:
            raise
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and not path.exists() and path.parent.exists():
                raise self._error(exc, "get", key) from None
            if exc.filename and os.fspath(exc.filename) == os.fspath(path):
                raise  # a local disk problem, not the remote's
            raise self._error(exc, "get", key) from None
        except Exception as exc:
            raise self._error(exc, "get", key) from None
        return size, digest.hexdigest()

    async def put_if_absent(self, key: str, data: bytes) -> bool:
        import obstore

        try:
            await obstore.put_async(self._raw, key, data, mode="create", use_multipart=False)
        except Exception as exc:
            error = self._error(exc, "put", key)
            if error.kind == "conflict":
                return False
            raise error from None
        return True

    async def head(self, key: str) -> ObjectMeta | None:
        import obstore

        try:
            meta = await obstore.head_async(self._raw, key)
        except Exception as exc:
            error = self._error(exc, "head", key)
            if error.kind == "not_found":
                return None
            raise error from None
        return ObjectMeta(key=str(meta["path"]), size=int(meta["size"]), modified=meta["last_modified"])

    async def list(self, prefix: str) -> list[ObjectMeta]:
        import obstore

        try:
            found = await obstore.list(self._raw, prefix=prefix, chunk_size=1000).collect_async()
        except Exception as exc:
            raise self._error(exc, "list", prefix) from None
        return [ObjectMeta(key=str(m["path"]), size=int(m["size"]), modified=m["last_modified"]) for m in found]

    async def delete(self, key: str) -> None:
        import obstore

        try:
            await obstore.delete_async(self._raw, key)
        except Exception as exc:
            error = self._error(exc, "delete", key)
            if error.kind != "not_found":
                raise error from None


def _retry(settings: RemoteConfig, request_timeout: float) -> dict[str, Any]:
    return {
        "max_retries": settings.retries,
        "retry_timeout": timedelta(seconds=request_timeout),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=2), "base": 2},
    }


def open_store(settings: RemoteConfig, env: Mapping[str, str], *, request_timeout: float) -> ObstoreStore:
    """The configured remote as an ObstoreStore; `request_timeout` caps one request, retries included."""
    from obstore.store import AzureStore, GCSStore, S3Store

    cloud = cloudenv.resolve(settings, env)
    scrub = Scrubber(cloud.secrets)
    client: Any = {**cloud.client, "timeout": f"{max(1, int(request_timeout * 1000))}ms"}
    retry: Any = _retry(settings, request_timeout)
    prefix = cloud.prefix or None
    options: Any = cloud.options
    try:
        raw: RawStore
        if cloud.scheme == "s3":
            raw = S3Store(prefix=prefix, config=options, client_options=client, retry_config=retry)
        elif cloud.scheme == "az":
            raw = AzureStore(prefix=prefix, config=options, client_options=client, retry_config=retry)
        else:
            raw = GCSStore(prefix=prefix, config=options, client_options=client, retry_config=retry)
    except Exception as exc:
        raise RemoteError(f"remote {cloud.where()}: cannot be set up: {scrub(_first_line(str(exc)))}", kind="config",
                          hint=f"check remote.url, remote.endpoint and {CREDENTIAL_VARS[cloud.scheme]}") from None
    return ObstoreStore(raw, where=cloud.where(), scrub=scrub, credentials=cloud.credentials)
