"""The embedded default store: a workspace folder, with atomic writes (write an unnamed or temporary
file, then link or rename it into place)."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from services.errors import AlreadyExists, KeyNotFound, StoreError, StoreUnavailable
from services.store.base import ArrowFiles, validate_key
from services.store.lease import process_alive, this_machine

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


TEMP_FOLDER = ".tmp"  # named temp files, outside every key's folder; never listed
# Whose a temp file is, as a name segment: the machine and pid namespace (`process_alive` checks
# only pids of this one), so a sweep never takes a file of a writer in another container.
_HOST = "".join(c if c.isalnum() else "_" for c in this_machine())[-60:] or "host"
STALE_TEMP_SECONDS = 3600


class LocalStore:
    """A workspace directory. Writes go to an unnamed (or temporary) file that is then linked or
    renamed into place; temp files a killed writer left are removed when the store is next opened."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()
        self._sweep_temps()

    def _sweep_temps(self) -> None:
        """Remove temp files of writers that died: a killed process must not leave message text
        behind. A file is a dead writer's when its process is gone (same machine) or it is old."""
        folder = self.root / TEMP_FOLDER
        try:
            entries = list(folder.iterdir())
        except OSError:
            return  # no temp folder yet (or no workspace): nothing to sweep
        now = time.time()
        for entry in entries:
            host, _, rest = entry.name.partition("-")
            pid = rest.partition("-")[0]
            try:
                dead = host == _HOST and pid.isdigit() and not process_alive(int(pid))
                if dead or now - entry.stat().st_mtime > STALE_TEMP_SECONDS:
                    entry.unlink()
            except OSError as exc:  # another process swept it first, or it is not ours to remove
                log.debug("left temp file %s: %s", entry.name, exc.strerror)

    def describe(self) -> str:
        return f"local folder {self.root}"

    def arrow_files(self, prefix: str) -> ArrowFiles:
        import pyarrow.fs as pafs

        return ArrowFiles(pafs.LocalFileSystem(), self._path(prefix, prefix=True).as_posix(), self.describe())

    def _path(self, key: str, *, prefix: bool = False) -> Path:
        return self.root.joinpath(*[p for p in validate_key(key, prefix=prefix).split("/") if p])

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise KeyNotFound(f"no object at {key!r} in {self.describe()}") from None
        except PermissionError as exc:
            raise StoreUnavailable(f"cannot read {key!r}: permission denied in {self.root}") from exc

    def put(self, key: str, data: bytes, *, if_absent: bool = False) -> None:
        path = self._path(key)
        if path.is_dir():
            raise StoreError(f"{key!r} is a folder of other keys in {self.root}; a local store cannot hold both")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = _open_unnamed(path.parent, self.root / TEMP_FOLDER)
        except (FileExistsError, NotADirectoryError) as exc:
            if self.root.is_dir():
                raise StoreError(
                    f"{key!r} lies under an existing key in {self.root}; a local store cannot hold both"
                ) from None
            raise StoreUnavailable(f"cannot write to {self.root}: it is not a folder. Check PULSE_WORKSPACE.") from exc
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot write to {self.root}: {exc.strerror}. "
                "Check that the workspace folder exists and is writable (PULSE_WORKSPACE)."
            ) from exc
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                if tmp is None:  # unnamed until now: give it a name (the target's, or a temporary one)
                    if if_absent:
                        _link(fh.fileno(), path, key)
                        return
                    tmp = _temp_name(self.root / TEMP_FOLDER)
                    _name_unnamed(fh.fileno(), tmp)
            if if_absent:
                _link(tmp, path, key)
            else:
                tmp.replace(path)
        except OSError as exc:
            raise StoreError(f"could not write {key!r}: {exc.strerror}") from exc
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def list(self, prefix: str) -> Iterator[str]:
        validate_key(prefix, prefix=True)
        # Walk only the directory the prefix names, then filter on the rest of it.
        head, _, _ = prefix.rpartition("/")
        base = self._path(head, prefix=True) if head else self.root
        if not base.is_dir():
            return iter(())
        keys = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".tmp")]
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = name if rel == "." else f"{rel}/{name}"
                if key.startswith(prefix):
                    keys.append(key)
        return iter(sorted(keys))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StoreError(f"could not delete {key!r}: {exc.strerror}") from exc


def _temp_name(temps: Path) -> Path:
    """A fresh name in the temp folder that says whose it is: host and process (see `_sweep_temps`)."""
    temps.mkdir(exist_ok=True)
    return temps / f"{_HOST}-{os.getpid()}-{secrets.token_hex(8)}.part"


def _open_unnamed(folder: Path, temps: Path) -> tuple[int, Path | None]:
    """A file to write an object into before it appears under its key: on Linux an unnamed one in
    the key's folder (O_TMPFILE), so a process killed while writing leaves nothing behind, not even
    message text; elsewhere (or on a file system without it) a named file in the temp folder."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag and Path("/proc/self/fd").is_dir():
        try:
            return os.open(folder, flag | os.O_WRONLY, 0o600), None
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                raise
    tmp = _temp_name(temps)
    return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), tmp


def _name_unnamed(fd: int, target: Path) -> None:
    """Give the unnamed file open as `fd` the name `target` (linkat through /proc/self/fd, which
    CPython only calls with a directory fd given; plain link() would link the /proc entry itself)."""
    proc = os.open("/proc/self/fd", os.O_RDONLY)
    try:
        os.link(str(fd), target, src_dir_fd=proc, follow_symlinks=True)
    finally:
        os.close(proc)


def _link(source: int | Path, target: Path, key: str) -> None:
    # link() fails if the name exists: an atomic create-if-absent, unlike exists()+rename.
    try:
        if isinstance(source, int):
            _name_unnamed(source, target)
        else:
            os.link(source, target)
    except FileExistsError:
        raise AlreadyExists(f"{key!r} already exists") from None
