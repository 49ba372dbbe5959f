"""The embedded default store: a workspace folder, with atomic writes (write, then rename or link)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from services.errors import AlreadyExists, KeyNotFound, StoreError, StoreUnavailable
from services.store.base import ArrowFiles, validate_key

if TYPE_CHECKING:
    pass


class LocalStore:
    """A workspace directory. Writes go to a temporary file that is then renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

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
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
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
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if if_absent:
                # link() fails if the name exists: an atomic create-if-absent, unlike exists()+rename.
                try:
                    os.link(tmp, path)
                except FileExistsError:
                    raise AlreadyExists(f"{key!r} already exists") from None
            else:
                tmp.replace(path)
        except OSError as exc:
            raise StoreError(f"could not write {key!r}: {exc.strerror}") from exc
        finally:
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
            dirnames[:] = [d for d in dirnames if not d.startswith(".tmp-")]
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
