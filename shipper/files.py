"""The table of followed files: reconciling saved checkpoints with the disk, adopting new
files, noticing renames and deletions, and keeping open descriptors under ``max_open_files``.

No asyncio here; the daemon's parts call in from its loop. Identity is ``(st_dev, st_ino)``
checked with the head hash and the CRC before the saved offset (``shipper.identity``).

Every change of a follower's life-cycle state (``shipper.lifecycle``) is made here, which keeps
an index of the followers in each state but ``FOLLOWING`` (the timers ask for the detached and
the waiting ones) and tells ``on_state`` (the daemon wakes its timers).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from shipper import identity
from shipper.batcher import FileTrack
from shipper.checkpoint import FileCheckpoint, State
from shipper.config import ShipperConfig
from shipper.follower import Follower, InputRuntime, Key, find_by_inode, same_file
from shipper.lifecycle import FileState, status_word
from shipper.spool import OutBatch
from shipper.status import FilesSnapshot, FileStatus, Stats

log = logging.getLogger(__name__)


class FileTable:
    """Every followed file, by identity, path and file id."""

    def __init__(
        self,
        cfg: ShipperConfig,
        inputs: list[InputRuntime],
        stats: Stats,
        on_state: Callable[[Follower], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.inputs = inputs  # the running inputs (a reload replaces them)
        self.stats = stats
        self.on_state = on_state  # told after every life-cycle move
        self.followers: dict[Key, Follower] = {}
        self.by_path: dict[str, Follower] = {}
        self.tracks: dict[str, FileTrack] = {}  # every file id with a follower or spans in flight
        self.by_id: dict[str, Follower] = {}
        self.dormant: dict[Key, FileCheckpoint] = {}  # saved positions no input follows now
        self.open: set[Follower] = set()
        # Followers by state, for every state but FOLLOWING (most files) and RELEASED (gone).
        self._in: dict[FileState, dict[Follower, None]] = {
            s: {} for s in FileState if s not in (FileState.FOLLOWING, FileState.RELEASED)
        }
        # Matching files and directories on the way to them that could not be read (path →
        # why), rebuilt by every rescan: the daemon reports them (status, log).
        self.unreadable: dict[str, str] = {}
        self.first_start = False
        self.state_lost = False

    # -- lookups --------------------------------------------------------------------------

    def input_for(self, path: str) -> InputRuntime | None:
        """The first input whose globs take ``path``."""
        for inp in self.inputs:
            if inp.matcher.matches(path):
                return inp
        return None

    def follower_of(self, file_id: str) -> Follower | None:
        """The follower currently shipping under ``file_id``."""
        return self.by_id.get(file_id)

    def in_state(self, *states: FileState) -> list[Follower]:
        """The followers in any of ``states`` (not ``FOLLOWING``: ask ``followers``)."""
        return [f for s in states for f in self._in[s]]

    def register_id(self, f: Follower) -> None:
        """Index ``f`` under its (new) file id."""
        self.by_id[f.file_id] = f
        self.tracks[f.file_id] = f.track

    def unregister_id(self, f: Follower) -> None:
        """Forget ``f``'s current file id (it is about to get a new one: a truncation)."""
        if self.by_id.get(f.file_id) is f:
            del self.by_id[f.file_id]

    # -- life cycle (``shipper.lifecycle``) -------------------------------------------------

    def _to(self, f: Follower, state: FileState) -> None:
        old = f.state
        f.to(state)
        if old in self._in:
            del self._in[old][f]
        if state in self._in:
            self._in[state][f] = None
        if self.on_state is not None:
            self.on_state(f)

    def wait(self, f: Follower) -> None:
        """``f`` has bytes to read and no descriptor slot is free (a detached file stays
        detached: its own timer reads it again)."""
        if f.state is FileState.FOLLOWING:
            self._to(f, FileState.WAITING)

    def detach(self, f: Follower) -> None:
        """``f``'s path no longer leads to it: it is read to its end and released."""
        if f.state is not FileState.DETACHED:
            self._to(f, FileState.DETACHED)

    def finish(self, f: Follower) -> None:
        """``f`` (detached) is read to its end and flushed: close it; it is released once its
        spans are acknowledged."""
        self._to(f, FileState.FINISHED)
        self.close(f)

    def pause(self, f: Follower) -> None:
        """``f``'s input is going away (a reload): stop reading it."""
        self._to(f, FileState.PAUSED)

    def add_copy(self, copier: Follower) -> None:
        """Follow ``copier``, a rotated copy that holds bytes its file lost to a truncation
        (``shipper.reader``): detached from the start, it is read to its end and released."""
        self.followers[copier.key] = copier
        self.detach(copier)

    # -- start-up -------------------------------------------------------------------------

    def restore(self, state: State | None, spooled: list[OutBatch]) -> None:
        """Match saved positions with the files on disk; register spooled spans."""
        entries = {(e.dev, e.ino): e for e in state.files} if state else {}
        spool_end: dict[str, int] = {}
        for item in spooled:
            for span in item.spans:
                spool_end[span.file_id] = max(spool_end.get(span.file_id, 0), span.end)
        for inp in self.inputs:
            for path in inp.matcher.scan(self.unreadable):
                self.adopt(path, inp, entries, initial=True, spool_end=spool_end)
        for key, entry in entries.items():
            self._restore_unmatched(key, entry, spool_end)
        for item in spooled:
            for span in item.spans:
                track = self.tracks.get(span.file_id)
                if track is None:
                    # The file is gone; its spooled lines still go out, in order.
                    track = self.tracks[span.file_id] = FileTrack(span.file_id, span.start)
                track.sent(item.seq, span.end, track.check)
        for f in self.followers.values():
            f.track.span_start = max(f.track.span_start, f.pos)

    def _restore_unmatched(
        self, key: Key, entry: FileCheckpoint, spool_end: dict[str, int]
    ) -> None:
        """A saved file that no glob matched now: renamed by rotation while we were down,
        or its input was removed, or it is gone."""
        found = find_by_inode(os.path.dirname(entry.path), key)
        if found is None:
            log.info(
                "%s (file id %s) is gone; nothing more to read from it", entry.path, entry.file_id
            )
            return
        inp = next((i for i in self.inputs if i.label == entry.input), None)
        if not entry.detached and found == entry.path:
            self.dormant[key] = entry  # still there, no input follows it now
            return
        if inp is None:
            inp = self.inputs[0] if self.inputs else None
        if inp is None:
            self.dormant[key] = entry
            return
        log.info("%s was rotated to %s while stopped: finishing it", entry.path, found)
        f = self.adopt(found, inp, {key: entry}, initial=False, spool_end=spool_end)
        if f is not None:
            self.detach(f)
            self.by_path.pop(f.path, None)

    def adopt(
        self,
        path: str,
        inp: InputRuntime,
        entries: dict[Key, FileCheckpoint] | None = None,
        *,
        initial: bool = False,
        spool_end: dict[str, int] | None = None,
    ) -> Follower | None:
        """Start following ``path`` (resuming a saved position if its identity matches);
        ``None`` when it is followed already or cannot be read (then it is in ``unreadable``;
        a file deleted in the meantime is simply gone)."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.debug("cannot open %s: %s", path, exc)
            self.unreadable[path] = exc.strerror or str(exc)
            return None
        self.unreadable.pop(path, None)
        entry: FileCheckpoint | None = None
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            known = self.followers.get(key)
            if known is not None:
                if known.state is FileState.DETACHED and path not in self.by_path:
                    # Renamed to a name an input follows (rotated names in the glob): it
                    # simply goes on under its new name, same file id, same position.
                    known.path = path
                    self.by_path[path] = known
                    self._to(known, FileState.FOLLOWING)
                os.close(fd)
                return None
            entry = (entries or {}).pop(key, None) or self.dormant.pop(key, None)
            f = self._make(path, inp, fd, st.st_size, key, entry, initial, spool_end or {})
            f.fd = fd
            if f.pos:
                f.load_last_bytes()
        except OSError as exc:  # opened, but reading it fails (EIO): as unreadable as EACCES
            os.close(fd)
            if entry is not None:
                self.dormant[key] = entry  # its saved position waits for the next attempt
            self.unreadable[path] = exc.strerror or str(exc)
            return None
        except BaseException:
            os.close(fd)
            raise
        self.followers[key] = f
        self.by_path[path] = f
        self.register_id(f)
        self.open.add(f)
        if len(self.open) > self.cfg.max_open_files and not self.evict(exclude=None):
            self.close(f)
        return f

    def _make(
        self,
        path: str,
        inp: InputRuntime,
        fd: int,
        size: int,
        key: Key,
        entry: FileCheckpoint | None,
        initial: bool,
        spool_end: dict[str, int],
    ) -> Follower:
        max_line = self.cfg.max_line_bytes
        if entry is not None:
            verdict = identity.verify(
                fd, size, entry.offset, entry.check, entry.head_len, entry.head
            )
            if verdict is identity.Verdict.SAME:
                start = max(entry.offset, spool_end.get(entry.file_id, 0))
                track = FileTrack(entry.file_id, entry.offset, entry.check)
                f = Follower(
                    key,
                    path,
                    entry.source or path,
                    inp,
                    track,
                    inp.new_tail(start, max_line, entry.forced, os.pread(fd, 2, 0), entry.skips),
                    head_len=entry.head_len,
                    head=entry.head,
                    forced=[b for b in entry.forced if b > entry.offset],
                    size=size,
                    rotations=entry.rotations,
                )
                return f
            self.stats.truncations += 1
            log.info(
                "%s was %s since its checkpoint (offset %d, file id %s): reading it from the "
                "start as a new file",
                path,
                verdict.value,
                entry.offset,
                entry.file_id,
            )
            start = 0
        else:
            at_end = initial and (
                (self.first_start and inp.config.start_at == "end")
                or (self.state_lost and self.cfg.on_state_loss == "end")
            )
            start = size if at_end else 0
        file_id = identity.new_file_id(*key)
        check = identity.check_before(fd, start) if start else 0
        track = FileTrack(file_id, start, check)
        f = Follower(
            key,
            path,
            path,
            inp,
            track,
            inp.new_tail(start, max_line, head=os.pread(fd, 2, 0) if start else b""),
            size=size,
            rotations=entry.rotations + 1 if entry is not None else 0,
        )
        if start:
            f.head_len, f.head = identity.head_of(fd, size)
        return f

    # -- descriptors ------------------------------------------------------------------------

    def ensure_open(self, f: Follower) -> bool:
        """Open ``f`` within the descriptor budget; ``False``: no slot now (then ``f`` waits,
        ``wait``), or the file moved (then it has been re-pointed or released)."""
        if f.fd is not None:
            return True
        if len(self.open) >= self.cfg.max_open_files and not self.evict(exclude=f):
            self.wait(f)
            return False
        if f.open():
            self.open.add(f)
        elif not self.relocate(f):
            return False
        if f.state is FileState.WAITING:
            self._to(f, FileState.FOLLOWING)
        return True

    def evict(self, exclude: Follower | None) -> bool:
        """Close the least recently used descriptor that can be reopened by path, preferring
        files read to their end."""
        best: Follower | None = None
        best_rank = (True, 0.0)
        for f in self.open:
            if f is exclude or not f.closable:
                continue
            rank = (f.size > f.pos, f.last_used)
            if best is None or rank < best_rank:
                best, best_rank = f, rank
        if best is None:
            return False
        self.close(best)
        return True

    def close(self, f: Follower) -> None:
        """Close a follower's descriptor (it stays followed)."""
        f.close()
        self.open.discard(f)

    def close_idle(self, older_than_s: float) -> int:
        """Close descriptors of files with nothing new for a while; return how many."""
        cutoff = time.monotonic() - older_than_s
        idle = [f for f in self.open if f.closable and f.last_used < cutoff and f.pos >= f.size]
        for f in idle:
            self.close(f)
        return len(idle)

    def relocate(self, f: Follower) -> bool:
        """``f``'s path no longer leads to it: find it by inode in its directory (a rename),
        or let it go (deleted while its descriptor was closed)."""
        found = find_by_inode(os.path.dirname(f.path), f.key)
        if found is not None and same_file(found, f.key, f.pos, f.last_bytes):
            self.move(f, found)
            if f.open():
                self.open.add(f)
                return True
        if f.size > f.pos:
            self.stats.dropped_bytes_vanished += f.size - f.pos
            log.warning(
                "%s vanished with %d bytes unread while its descriptor was closed",
                f.path,
                f.size - f.pos,
            )
        self.release(f)
        return False

    # -- renames and deletions ----------------------------------------------------------------

    def move(self, f: Follower, new_path: str) -> None:
        """``f`` now lives at ``new_path``: keep following it if an input takes that path,
        else finish it (a rotated file)."""
        if self.by_path.get(f.path) is f:
            del self.by_path[f.path]
        f.path = new_path
        f.rotations += 1
        self.stats.rotations += 1
        if self.input_for(new_path) is not None and new_path not in self.by_path:
            self.by_path[new_path] = f
        else:
            self.detach(f)

    def check_path(self, f: Follower) -> str | None:
        """After an event or at a rescan: does ``f.path`` still lead to ``f``? Returns a path
        that now holds another file (to adopt), if any. Only asked of files that are followed
        by their path (``FOLLOWING``, ``WAITING``)."""
        if f.state not in (FileState.FOLLOWING, FileState.WAITING):
            return None
        try:
            st = os.stat(f.path)
        except OSError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == f.key:
            return None
        old = f.path
        found = find_by_inode(os.path.dirname(f.path), f.key)
        if found is not None and (f.fd is not None or same_file(found, f.key, f.pos, f.last_bytes)):
            # With our descriptor open the inode cannot have been reused; without it, the
            # bytes before our position must match.
            self.move(f, found)
            log.info("%s was renamed to %s", old, found)
        else:
            if self.by_path.get(old) is f:
                del self.by_path[old]
            self.detach(f)
            f.rotations += 1
            self.stats.rotations += 1
            if f.fd is None:
                self.relocate(f)
            else:
                log.info("%s was deleted: reading it to its end", old)
        return old if st is not None else None

    def release(self, f: Follower) -> None:
        """Stop following ``f`` (its spans in flight still complete)."""
        if f.state is FileState.RELEASED:
            return
        self._to(f, FileState.RELEASED)
        self.close(f)
        if self.followers.get(f.key) is f:
            del self.followers[f.key]
        if self.by_path.get(f.path) is f:
            del self.by_path[f.path]
        if self.by_id.get(f.file_id) is f:
            del self.by_id[f.file_id]
        if not f.track.busy and self.tracks.get(f.file_id) is f.track:
            del self.tracks[f.file_id]

    def retire(self, f: Follower, saved: FileCheckpoint | None) -> None:
        """Release ``f`` for good (its input was removed), keeping ``saved`` (its acknowledged
        position) as a dormant checkpoint: an input that takes the file again resumes there."""
        self.release(f)
        if saved is not None:
            self.dormant[f.key] = saved

    def forget_track(self, track: FileTrack) -> None:
        """Drop a ledger nobody follows once nothing is in flight."""
        if (
            not track.busy
            and self.tracks.get(track.file_id) is track
            and track.file_id not in self.by_id
        ):
            del self.tracks[track.file_id]

    # -- what the outside sees -------------------------------------------------------------

    def snapshot(self) -> FilesSnapshot:
        """Every followed file as ``wharf shipper status`` shows it, and the totals."""
        files = [
            FileStatus(
                path=f.path,
                input=f.input.label,
                topic=f.input.topic,
                file_id=f.file_id,
                dev=f.key[0],
                ino=f.key[1],
                offset=f.track.acked,
                read_offset=f.pos,
                size=f.size,
                lag_bytes=max(0, f.size - f.track.acked),
                last_read=f.last_read,
                rotations=f.rotations,
                state=status_word(f.state, f.fd is not None),
            )
            for f in self.followers.values()
        ]
        files.sort(key=lambda s: s.path)
        return FilesSnapshot(
            files=files,
            open_files=len(self.open),
            followed_files=len(self.followers),
            unreadable=dict(self.unreadable),
        )

    # -- checkpoints ---------------------------------------------------------------------------

    def state(self) -> State:
        """Every followed and dormant file's acknowledged position."""
        files = [
            FileCheckpoint(
                file_id=f.file_id,
                path=f.path,
                dev=f.key[0],
                ino=f.key[1],
                offset=f.track.acked,
                check=f.track.check,
                head_len=f.head_len,
                head=f.head,
                source=f.source,
                input=f.input.label,
                forced=[b for b in f.forced if b > f.track.acked],
                skips=_skips(f),
                detached=f.detached,
                rotations=f.rotations,
            )
            for f in self.followers.values()
        ]
        files += self.dormant.values()
        return State(files=files)

    def prune_dormant(self) -> None:
        """Forget saved positions of files that are gone."""
        for key, entry in list(self.dormant.items()):
            try:
                st = os.stat(entry.path)
            except OSError:
                st = None
            if st is None or (st.st_dev, st.st_ino) != key:
                del self.dormant[key]


def _skips(f: Follower) -> list[int]:
    """``f``'s skip points still needed by a restart (at or past the acknowledged offset)."""
    points = f.tail.skip_points
    if points:
        points[:] = [b for b in points if b >= f.track.acked]
    return list(points)
