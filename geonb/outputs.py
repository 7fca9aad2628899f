"""Writing outputs without ever losing user data.

Every output path of a command is checked before any work (``check_outputs``: never an input, never
replaced without ``--overwrite``, only what geonb writes); a file or zarr store is written beside its
path and swapped in when complete (``atomic_path``), so a kill leaves the old or the new, and the next
write removes what a killed run left; the free space is checked first and a full disk is one clear
error; a work folder is locked while a process uses it (``locked``). The file formats themselves are
written by ``geonb.io``.
"""
from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from .errors import GeonbError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process (alive), or no pid at all
        return pid > 0
    return True


def temp_prefix(name: str) -> str:
    """The prefix of geonb's temporary files for ``name``: it holds the owner's pid, so that a later run
    can tell a killed run's leftovers (owner gone) from another run's write in progress."""
    return f"{name}.geonb-{os.getpid()}-"


def remove_stale(folder, name: str, suffix: str = "") -> list[Path]:
    """Remove the temporary files/folders ``<name>.geonb-<pid>-*<suffix>`` in ``folder`` whose owner
    process is gone (killed mid-write); returns what was removed."""
    removed = []
    for found in Path(folder).glob(f"{glob.escape(name)}.geonb-*-*{suffix}"):
        pid = found.name[len(name) + len(".geonb-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(found, ignore_errors=True) if found.is_dir() else found.unlink(missing_ok=True)
            removed.append(found)
    return removed


ZARR_METADATA = {"zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata"}
ZARR_CHUNK = re.compile(r"(c/)?\d+([./]\d+)*")  # chunk keys: zarr 2 "0.1" or "0/1", zarr 3 "c/0/1"


def _foreign(store: Path) -> str | None:
    """The first thing in folder ``store`` that a zarr writer does not write: anything but metadata, and chunk
    keys under the nearest folder holding metadata (None: a zarr store, or an empty folder)."""
    holder = {store: None}  # folder → the nearest folder at or above it that holds zarr metadata
    for root, dirs, names in os.walk(store):
        here = Path(root)
        meta = here if ZARR_METADATA & set(names) else holder[here]
        for name in dirs:
            holder[here / name] = meta
        for name in [*names, *dirs]:
            entry = here / name
            if entry.is_symlink() or not (entry.is_file() or entry.is_dir()):
                return str(entry)
            if entry.is_file() and name not in ZARR_METADATA and \
                    not (meta and ZARR_CHUNK.fullmatch(entry.relative_to(meta).as_posix())):
                return str(entry)
    return None


def not_replaceable(path: Path) -> str | None:
    """Why ``--overwrite`` may not replace the existing ``path`` (None: it may): only a regular file (or a link,
    which is replaced, not its target) or a folder holding nothing but a zarr store."""
    mode = path.lstat().st_mode
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISDIR(mode):
        other = _foreign(path)
        return None if other is None else f"is a folder that holds more than a zarr store ({other})"
    return f"is {'a FIFO' if stat.S_ISFIFO(mode) else 'a socket' if stat.S_ISSOCK(mode) else 'a device'}, not a file"


def _settle(path: Path) -> None:
    """Finish what a killed replacement of ``path`` left: a store renamed aside by a dead process is put back
    when nothing took its place (killed between the two renames of ``replace``), else deleted; then the dead
    processes' temp files are removed."""
    for aside in path.parent.glob(f"{glob.escape(f'.{path.name}')}.geonb-*-aside"):
        pid = aside.name[len(path.name) + len("..geonb-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            if path.exists() or path.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.rename(aside, path)
    remove_stale(path.parent, f".{path.name}", ".tmp")


def replace(new: Path, path: Path) -> None:
    """Put the complete ``new`` in place of ``path``. Over a file: one rename. A folder (a zarr store), or a
    folder over a file: the old is renamed aside, the new renamed in, then the old deleted; a kill at any point
    leaves the old or the new complete (between the two renames the old waits aside for ``_settle``)."""
    if not (new.is_dir() or path.is_dir()) or not (path.exists() or path.is_symlink()):
        os.replace(new, path)
        return
    aside = path.with_name(f"{temp_prefix(f'.{path.name}')}aside")
    os.rename(path, aside)
    os.rename(new, path)
    shutil.rmtree(aside) if aside.is_dir() and not aside.is_symlink() else aside.unlink()


def _size(nbytes: float) -> str:
    """Bytes as people read them: 512 bytes, 44.0 kB, 3.7 MB, 1.2 GB."""
    if nbytes < 1024:
        return f"{nbytes:.0f} bytes"
    for unit in ("kB", "MB", "GB"):
        nbytes /= 1024
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.1f} {unit}"


def check_space(path: Path, size: int | None) -> None:
    """Refuse to start writing ``size`` bytes at ``path`` when its disk has less free."""
    free = shutil.disk_usage(path.parent).free
    if size is not None and free < size:
        raise GeonbError(f"{path}: not enough free space ({_size(free)} free on its disk, it needs about "
                         f"{_size(size)}); free some space or give a path on another disk.")


def no_room(exc: BaseException, folder: Path | None = None, written: int = 0) -> str | None:
    """Why a write failed for want of room, or None: this process's file-size limit (``ulimit -f``: EFBIG, or a
    library's own error once ``written`` bytes reach the limit) or a full disk (ENOSPC/EDQUOT, or the library's
    error while ``folder`` has no room left). The libraries say "HDF error" (netCDF) or "enforce fail …
    inline_container" (torch) for both."""
    import resource  # POSIX, as ``locked``'s fcntl

    errnos = {cause.errno for cause in (exc, exc.__cause__, exc.__context__) if isinstance(cause, OSError)}
    library = any(text in str(exc) for text in ("HDF error", "inline_container", "No space left", "too large"))
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if errno.EFBIG in errnos or (library and limit != resource.RLIM_INFINITY and written >= limit // 2):
        return f"a file would pass this process's file-size limit ({_size(limit)}, `ulimit -f`)"
    if errnos & {errno.ENOSPC, errno.EDQUOT} or (library and folder is not None and shutil.disk_usage(folder).free < 2**20):
        return f"the disk is full ({_size(shutil.disk_usage(folder).free)} free)" if folder is not None else "the disk is full"
    return None


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size if path.exists() else 0


@contextlib.contextmanager
def atomic_path(path, *, folder: bool = False, size: int | None = None):
    """Yield a temporary path (a file, or a ``folder``) beside ``path``, put in its place (``replace``) only when
    complete; a killed write leaves a temp file that the next write of ``path`` removes. ``size``: the bytes it
    will take, checked against the free space first; a full disk is one GeonbError naming the path and the
    space, with nothing left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _settle(path)
    check_space(path, size)
    prefix = temp_prefix(f".{path.name}")
    if folder:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=path.parent))
    else:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield tmp
        tmp.chmod((0o777 if folder else 0o666) & ~umask)  # mkstemp/mkdtemp make them private
        replace(tmp, path)
    except Exception as exc:
        written = _bytes(tmp)
        why = no_room(exc, path.parent, written)
        if why is None:
            raise
        needs = f"about {_size(size)}" if size else f"more than the {_size(written)} written when it stopped"
        raise GeonbError(f"{path}: {why}; this output needs {needs}. Nothing was written. Free some space, raise "
                         "the limit or give a path on another disk.") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True) if folder else tmp.unlink(missing_ok=True)


def _same(a: Path, b: Path) -> bool:
    """The same file or folder: equal after resolving links, or one inode (hard links, bind mounts)."""
    return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))


def _inside(a: Path, folder: Path) -> bool:
    """``a`` lies in the data store ``folder`` (a zarr input), where writing would change the input."""
    store = folder.suffix == ".zarr" or any((folder / name).exists() for name in ("zarr.json", ".zgroup", ".zarray"))
    return store and folder.is_dir() and a.resolve().is_relative_to(folder.resolve())


def refuse_input_as_output(out, inputs, flag: str = "--out") -> Path:
    """``out`` as a Path, or a GeonbError when it is one of the ``inputs`` (same path after resolving
    links, or the same file by inode) or inside an input folder (a zarr store): no input is ever replaced."""
    out = Path(out).expanduser()
    for given in filter(None, inputs):
        p = Path(given).expanduser()
        if p.exists() and (_same(out, p) or _inside(out, p)):
            raise GeonbError(f"{flag} {out} is an input of this command ({p}); geonb never overwrites its inputs. "
                             "Give another path.")
    return out


NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS, Windows)


def check_outputs(outputs: dict, inputs=(), *, overwrite: bool = False, folders=(),
                  stores=("--out",)) -> dict[str, Path]:
    """Check every output path of a command before any work; returns them as Paths by flag.

    ``outputs``: flag → path (None: not asked for); ``folders``: the flags that name a folder geonb
    fills and reuses (a work dir); ``stores``: those that may name a zarr store (a model file never replaces
    one). No output may be an input (``refuse_input_as_output``) or another output; an output file must not
    be a folder, and replaces an existing one only with ``overwrite`` and only when ``not_replaceable``
    allows; the nearest existing parent must be a folder this user can write in.
    """
    checked: dict[str, Path] = {}
    for flag, given in outputs.items():
        if given is None or given == "":
            continue
        long = [part for part in Path(given).parts if len(os.fsencode(part)) > NAME_MAX]
        if long:
            raise GeonbError(f"{flag}: the name {long[0][:40]}… is {len(os.fsencode(long[0]))} bytes long, more than the "
                             f"{NAME_MAX} a file name may have; give a shorter name.")
        path = refuse_input_as_output(given, inputs, flag)
        for other, seen in checked.items():
            if _same(path, seen):
                raise GeonbError(f"{flag} {path} is also {other}; give each output its own path.")
        if flag in folders:
            if path.exists() and not path.is_dir():
                raise GeonbError(f"{flag} {path} is a file, not a folder; give a folder path.")
        elif path.is_dir() and not (flag in stores and path.suffix == ".zarr"):
            raise GeonbError(f"{flag} {path} is a folder; give a file path.")
        else:
            if path.parent.is_dir():
                _settle(path)  # a store a killed replacement left aside is back before we look
            if path.exists() or path.is_symlink():
                _check_replace(flag, path, inputs, overwrite)
        parent = path.parent
        while not parent.exists() and not parent.is_symlink():
            parent = parent.parent
        if not parent.is_dir():
            raise GeonbError(f"{flag} {path}: {parent} is a file, not a folder; give a path in a folder.")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise GeonbError(f"{flag} {path}: no permission to write in {parent}; give a path in a folder you can "
                             "write to.")
        checked[flag] = path
    return checked


def _check_replace(flag: str, path: Path, inputs, overwrite: bool) -> None:
    """``--overwrite`` replaces only what geonb writes (``not_replaceable``), never a folder holding an input."""
    if not overwrite:
        raise GeonbError(f"{flag} {path} exists; geonb does not replace it unless you pass --overwrite "
                         "(overwrite=True), or give another path.")
    if path.is_dir() and not path.is_symlink():
        for given in filter(None, inputs):
            p = Path(given).expanduser()
            if p.exists() and p.resolve().is_relative_to(path.resolve()):
                raise GeonbError(f"{flag} {path} holds an input of this command ({p}); geonb never overwrites its "
                                 "inputs. Give another path.")
    why = not_replaceable(path)
    if why:
        raise GeonbError(f"{flag} {path} {why}; --overwrite replaces only a regular file or a folder holding "
                         "nothing but a zarr store. Give another path, or move it away yourself.")


@contextlib.contextmanager
def locked(folder, what: str):
    """Hold an exclusive lock on ``folder`` (created) while the block runs; a second process asking for
    it gets a GeonbError at once. The lock dies with its process, so a killed run never leaves it held."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            raise GeonbError(f"{what} {folder} is in use by another geonb process (pid {owner}); wait for it to "
                             "finish or give another folder.") from None
        handle.seek(0)
        handle.truncate()
        handle.write(" ".join([f"{os.getpid()}:", Path(sys.argv[0]).name, *sys.argv[1:]])[:200])
        handle.flush()
        yield folder

