"""What SOURCE means for `catdog-runtime SOURCE --ray`: a folder or a glob (listed by the runtime's one
folder reader, as a single-process run lists them), a single image, a text file (.txt or .lst) with one
path or URI per line, or a `scheme://` URI any pyarrow filesystem reads (s3://, gs://, hdfs://,
file://...), listed on the driver. Local paths become absolute: Ray workers do not run in the
driver's working folder, and a resumed job must name each input as the first run did."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from catdog.runtime.scale.actor import is_uri
from catdog.runtime.spine.errors import InputError, error_line
from catdog.runtime.spine.folders import is_image_name

LIST_SUFFIXES = (".txt", ".lst")


def list_sources(spec: str, recursive: bool = False) -> list[str]:
    """The inputs of a --ray run, in a reproducible order. Raises InputError for an unusable SOURCE."""
    if is_uri(spec):
        return _list_uri(spec, recursive)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        return read_list(path)
    from catdog.runtime.live.sources import open_source

    src = open_source(spec, recursive=recursive)  # folders, globs and files exactly as without --ray
    if src.kind != "files":
        raise InputError(f"{spec}: is a {src.kind}; --ray classifies image files (a folder, a glob, a list "
                         f"file {'/'.join(LIST_SUFFIXES)} or a URI)")
    return [os.path.abspath(p) for p in src.files]


def read_list(path: Path) -> list[str]:
    """One path or URI per line; blank lines and lines starting with # are skipped. Relative paths
    are relative to the list file's folder, so the list means the same from any working folder."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file; a list has one path or URI per line") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None
    base = path.resolve().parent
    out = []
    for line in text.splitlines():
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        out.append(entry if is_uri(entry) else os.path.abspath(base / os.path.expanduser(entry)))
    if not out:
        raise InputError(f"{path}: lists no paths; write one image path or URI per line")
    return out


def _list_uri(uri: str, recursive: bool) -> list[str]:
    from pyarrow import fs

    try:
        filesystem, root = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(root)
    except Exception as e:  # noqa: BLE001 - pyarrow: unknown scheme, no credentials, no network
        raise InputError(f"{uri}: cannot open ({error_line(e)})") from None
    if info.type == fs.FileType.NotFound:
        raise InputError(f"{uri}: no such file or folder")
    if info.type == fs.FileType.File:
        return [uri]
    # Listed paths are the filesystem's own ("bucket/key", "/abs/path"): put the URI's head back on.
    at = uri.rstrip("/").rfind(root.rstrip("/")) if root.strip("/") else len(uri.rstrip("/"))
    if at < 0:
        raise InputError(f"{uri}: cannot map the listed files back to URIs (an escaped character?); "
                         "pass a list file of URIs instead")
    prefix = uri[:at]
    try:
        found = filesystem.get_file_info(fs.FileSelector(root, recursive=recursive))
    except Exception as e:  # noqa: BLE001 - see above
        raise InputError(f"{uri}: cannot list ({error_line(e)})") from None
    base = PurePosixPath(root)
    files = sorted(f.path for f in found if f.type == fs.FileType.File and _visible_image(base, f.path))
    if not files:
        hint = "" if recursive else " (use --recursive for subfolders)"
        raise InputError(f"{uri}: no image files here{hint}")
    return [prefix + p for p in files]


def _visible_image(base: PurePosixPath, path: str) -> bool:
    """The folder reader's policy: an image name, not below a hidden folder."""
    rel = PurePosixPath(path).relative_to(base)
    return is_image_name(rel.name) and not any(part.startswith(".") for part in rel.parts[:-1])
