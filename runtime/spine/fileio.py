"""File I/O at the boundary: atomic writes (temp + fsync + rename, so a crash never leaves a
half-written file under a final name) and the checks every output path gets before any work."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from catdog.runtime.spine.errors import OutputError


def check_output_file(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), flag: str = "output"
                      ) -> Path:
    """Every output file's check, before any work: not a folder, not read-only, not one of the
    `inputs` (every file the run reads: same file, whatever the spelling or link), and a folder it
    can be written in. Makes no folder (atomic_path makes them when the file is written: a run that
    fails first leaves none). Returns the path normalised (`a/../b.csv` is `b.csv`)."""
    p = Path(os.path.normpath(os.path.expanduser(os.fspath(path))))
    _check_replaceable(p, flag)
    if p.exists():
        st = p.stat()
        for src in inputs:
            try:
                same = os.path.samestat(st, os.stat(src))
            except OSError:
                continue
            if same:
                raise OutputError(f"{flag} {path}: is one of the inputs ({src}); writing there would destroy it; "
                                  "choose another file")
    check_writable_dir(p.parent, create=False)
    return p


def _check_replaceable(path: Path, flag: str = "output") -> None:
    """An existing `path` may be replaced only if it is a regular file its owner may write: a
    rename would otherwise go through a read-only file's protection (and root ignores mode bits)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing to replace; whether the folder can be made is the folder check's to say
    except OSError as e:
        raise OutputError(f"{flag} {path}: cannot check it ({e.strerror}); choose another path") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{flag} {path}: is a folder; give a file name, e.g. {path / 'results'}"
                          f"{path.suffix or '.csv'}")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{flag} {path}: is not a regular file (a device, FIFO or socket); choose another path")
    if not st.st_mode & stat.S_IWUSR:
        raise OutputError(f"{flag} {path}: is read-only; make it writable (chmod u+w) or choose another file")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside `path`; on success fsync it and rename it over `path`.
    On any error the temp file is removed and a previous `path` is left untouched. A read-only or
    non-regular `path` is refused; a replaced file keeps its permission bits."""
    path = Path(path)
    _check_replaceable(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # here, not at the top: a one-photo run writes nothing (cold start)

        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as e:
        raise OutputError(f"cannot write to {path.parent}: {e.strerror}; choose a writable folder") from None
    tmp = Path(tmp_name)
    keep_mode(tmp, path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        hint = "free some disk space" if e.errno == errno.ENOSPC else "check the path and permissions"
        raise OutputError(f"cannot write {path}: {e.strerror}; {hint}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_readable(path: str | os.PathLike) -> None:
    """mkstemp makes 0600 files; an output should get the usual 0666 & ~umask like any other."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def keep_mode(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """The temp file that will replace `target` gets its permission bits (a 0600 file stays
    private), or the usual 0666 & ~umask for a new file."""
    try:
        os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
    except FileNotFoundError:
        make_readable(tmp)


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Write bytes or text to `path` atomically."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(raw)
    return Path(path)


def check_writable_dir(path: str | os.PathLike, create: bool = True) -> Path:
    """Fail early (before long work) if `path` cannot hold our outputs. With create=False no folder
    is made: the nearest existing one must be a folder this process can create files in."""
    path = Path(path)
    probe = path
    if not create:  # the folders mkdir -p would make are missing: check where it would start
        while not os.path.lexists(probe) and probe != probe.parent and str(probe) not in ("", "."):
            probe = probe.parent
    try:
        if probe.exists() and not probe.is_dir():
            if probe != path:  # a file where mkdir -p would make a folder: what mkdir itself would say
                raise OutputError(f"cannot write to {path}: {os.strerror(errno.ENOTDIR)}; choose a writable folder")
            raise OutputError(f"cannot write to {path}: it is a file, not a folder; choose another folder")
        if create:
            path.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.NamedTemporaryFile(dir=probe, prefix=".probe.", delete=True):
            pass
    except OSError as e:
        raise OutputError(f"cannot write to {path}: {e.strerror}; choose a writable folder") from None
    return path


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (checkpoints and models run to hundreds of MB)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
