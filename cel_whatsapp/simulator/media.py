"""Media the simulator holds: the files the simulated user sends."""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

#: The largest file the simulator accepts (WhatsApp's video and audio limit).
MAX_MEDIA_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredMedia:
    """One file, with what the Graph API reports about it."""

    id: str
    content: bytes
    mime_type: str
    sha256: str
    filename: str | None = None

    @property
    def size(self) -> int:
        return len(self.content)


class MediaStore:
    """Files by media id, bounded in total size (the oldest go first)."""

    def __init__(self, max_total_bytes: int = 128 * 1024 * 1024) -> None:
        self.max_total_bytes = max_total_bytes
        self._items: OrderedDict[str, StoredMedia] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def put(self, content: bytes, mime_type: str, filename: str | None = None) -> StoredMedia:
        """Store a file and give it a fresh numeric media id."""
        if len(content) > MAX_MEDIA_BYTES:
            raise ValueError(f"file is {len(content)} bytes; the limit is {MAX_MEDIA_BYTES}")
        with self._lock:
            media_id = f"{int(time.time())}{next(self._ids):06d}"
            item = StoredMedia(
                id=media_id,
                content=content,
                mime_type=mime_type,
                sha256=hashlib.sha256(content).hexdigest(),
                filename=filename,
            )
            self._items[media_id] = item
            self._total += item.size
            while self._total > self.max_total_bytes and len(self._items) > 1:
                _, evicted = self._items.popitem(last=False)
                self._total -= evicted.size
            return item

    def get(self, media_id: str) -> StoredMedia | None:
        with self._lock:
            return self._items.get(media_id)

    def delete(self, media_id: str) -> bool:
        with self._lock:
            item = self._items.pop(media_id, None)
            if item is None:
                return False
            self._total -= item.size
            return True

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0
