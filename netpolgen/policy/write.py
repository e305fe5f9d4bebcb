"""Writing policies to a directory or one file: whole or not at all, never outside it.

Permissions: files are created 0666 and directories 0777, less the process's umask (0644 and
0755 under the usual 022), as ``cp`` and ``kubectl`` users expect; ``tempfile`` alone would
leave the staging directory, which becomes the output, at 0700 and its files at 0600.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from itertools import zip_longest
from pathlib import Path

from netpolgen._faults import checkpoint
from netpolgen.errors import OutputError
from netpolgen.policy.atomic import directory_lock, exchange
from netpolgen.policy.model import Policy
from netpolgen.policy.render import dump_yaml, render_yaml, sorted_policies

# write_tree: files written by _FILE_THREADS threads from _THREADED_FILES files on.
_THREADED_FILES = 32
_FILE_THREADS = 4
# Namespaces are DNS-1123 labels and policy names DNS-1123 subdomains; checking both here means
# no name taken from the logs can become "../" or an absolute path.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


def policy_path(policy: Policy) -> Path:
    """``<namespace>/<name>.yaml``, after checking that both are valid Kubernetes names."""
    if not _DNS_LABEL.match(policy.namespace):
        raise OutputError(f"namespace {policy.namespace!r} is not a valid Kubernetes namespace")
    if not _DNS_SUBDOMAIN.match(policy.name) or ".." in policy.name:
        raise OutputError(f"policy name {policy.name!r} is not a valid Kubernetes name")
    return Path(policy.namespace) / f"{policy.name}.yaml"


def write_policy_dir(
    policies: Iterable[Policy], directory: str | Path, *, force: bool = False
) -> list[Path]:
    """Write one file per policy, ``<namespace>/<name>.yaml``, under ``directory`` atomically
    (see :func:`write_tree`), with a ``kustomization.yaml`` in every directory
    (:func:`kustomizations`), so ``kubectl apply -k directory`` applies them all and
    ``kubectl apply -k directory/<namespace>`` one namespace.

    Args:
        policies: the policies to write.
        directory: where; ``<namespace>/<name>.yaml`` beneath it.
        force: replace an existing non-empty directory.

    Returns:
        The policy files written, relative to ``directory`` (the kustomizations not counted).

    Raises:
        OutputError: when ``directory`` is a file, is not empty (without ``force``), or a name
            is not a valid Kubernetes name.

    Examples:
        >>> write_policy_dir(result.policies, "policies/")  # doctest: +SKIP
        [PosixPath('shop/frontend-access-egress.yaml'), ...]
    """
    policies = sorted_policies(policies)
    relative = [policy_path(p) for p in policies]
    if len(set(relative)) != len(relative):
        raise OutputError("two policies would be written to the same file", source=str(directory))
    files = {path: dump_yaml(p.to_manifest()) for path, p in zip(relative, policies, strict=True)}
    write_tree({**files, **kustomizations(files)}, directory, force=force)
    return list(files)


def write_policy_file(policies: Iterable[Policy], path: str | Path, *, force: bool = False) -> Path:
    """Write every policy to one multi-document YAML file, atomically.

    The text is :func:`render_yaml`'s (what ``-o -`` prints). It is written to a temporary file
    beside ``path`` that then takes its place in one rename, so a reader never sees half a file.

    Args:
        policies: the policies to write.
        path: the file; its directory must exist.
        force: replace an existing file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputError: when ``path`` is a directory, exists (without ``force``), or cannot be
            written.

    Examples:
        >>> write_policy_file(result.policies, "policies.yaml")  # doctest: +SKIP
        PosixPath('policies.yaml')
    """
    target = Path(path)
    text = render_yaml(policies)
    # Two runs given one file take turns: the second finds the first's file.
    with directory_lock(target.parent) as locked:
        if target.is_dir():
            raise OutputError("is a directory, not a file", source=str(target))
        if target.exists() and not force:
            raise OutputError(
                "output file exists", source=str(target),
                hint="choose a new name, or pass --force to replace it",
            )  # fmt: skip
        if locked:
            remove_leftovers(target.parent, target.name)
        return write_text_file(text, target, what="output")


def write_text_file(text: str, path: str | os.PathLike[str], *, what: str) -> Path:
    """Write ``text`` to ``path`` whole or not at all: a temporary file beside it, given the
    mode a plain ``open`` would (0666 less the umask), then one rename. ``what`` names the
    output in errors ("cannot write {what}: ...").

    Raises:
        OutputError: naming ``path``, when the file cannot be created or written (nothing is
            left behind).
    """
    target = Path(path)
    try:
        handle, staging = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as error:
        raise OutputError(f"cannot create {what}: {error.strerror}", source=str(target)) from error
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(staging, 0o666 & ~_umask())
        checkpoint("write_text_file.publish")
        os.replace(staging, target)
    except BaseException as error:
        Path(staging).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise OutputError(
                f"cannot write {what}: {error.strerror or error}", source=str(target)
            ) from error
        raise
    return target


def _umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


KUSTOMIZATION = "kustomization.yaml"
# The names kustomize looks for in a directory (its konfig.RecognizedKustomizationFileNames).
KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})


def kustomizations(
    files: Mapping[Path, str], *, directories: Iterable[Path] | None = None
) -> dict[Path, str]:
    """A ``kustomization.yaml`` for each directory of ``files`` (relative paths -> text).

    Each lists, as ``resources``, the YAML files directly in it and the subdirectories that
    have a kustomization of their own (kustomize accepts both: a directory resource must hold a
    kustomization). ``directories`` limits which directories get one (default: every directory
    holding a file, and each of their parents up to the top, ``.``), as a migration plan wants
    one per stage but none at the top, where applying everything at once would skip the stages.
    The output is sorted: the same files give the same text.
    """
    yaml_files = [
        p for p in files if p.suffix in (".yaml", ".yml") and p.name not in KUSTOMIZATION_NAMES
    ]
    if directories is None:
        wanted = {parent for p in yaml_files for parent in p.parents}
    else:
        wanted = set(directories)
    resources: dict[Path, set[str]] = {d: set() for d in wanted}
    for path in yaml_files:
        if path.parent in resources:
            resources[path.parent].add(path.name)
    for directory in wanted:
        if directory != Path(".") and directory.parent in resources:
            resources[directory.parent].add(directory.name)
    return {
        directory / KUSTOMIZATION: dump_yaml(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": sorted(names),
            }
        )
        for directory, names in sorted(resources.items())
    }


def write_tree(
    files: Mapping[Path, str], directory: str | os.PathLike[str], *, force: bool = False
) -> list[Path]:
    """Write ``files`` (relative path -> text) under ``directory``: whole or not at all.

    The files are written to a temporary directory beside ``directory``, which then takes its
    place in one rename, so a failure leaves no partial output. An existing non-empty
    ``directory`` is refused unless ``force`` (then it is replaced as a whole). Relative paths
    must stay inside the directory (no absolute paths, no ``..``).
    """
    target = Path(directory)
    for relative in files:
        if relative.is_absolute() or ".." in relative.parts:
            raise OutputError(f"refusing to write outside the output directory: {relative}")
    parent = target.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create output: {error.strerror}", source=str(target)) from error
    # One run at a time publishes beside the output (a second run given the same -o waits,
    # then finds the first one's output whole: see netpolgen.policy.atomic).
    with directory_lock(parent) as locked:
        _check_target(target, force)
        if locked:  # else a staging copy there may be another live run's
            remove_leftovers(parent, target.name)
        try:
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=parent))
        except OSError as error:
            raise OutputError(
                f"cannot create output: {error.strerror}", source=str(target)
            ) from error
        try:
            # mkdtemp makes the staging directory 0700; the output it becomes is 0777 less the
            # umask like any other directory (subdirectories and files already are).
            staging.chmod(0o777 & ~_umask())
            _write_files(staging, files)
            _replace(staging, target, parent)
        except BaseException as error:
            # Any failure (a full disk, an interrupt, a bug) leaves no half-written staging.
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, OSError):
                raise OutputError(
                    f"cannot write output: {error.strerror or error}", source=str(target)
                ) from error
            raise
    checkpoint("write_tree.published")
    return list(files)


def _write_files(staging: Path, files: Mapping[Path, str]) -> None:
    """Write ``files`` under ``staging``; many of them on a few threads.

    Creating a file is a system call of ~0.3 ms on a virtual machine's disk (measured here: 200
    files 62 ms in one thread, 30 ms in two to four), and the call releases the interpreter
    lock, so a directory of hundreds of policies is written by threads. Each file is reported
    done (the fault-injection checkpoint) from this thread, as it is done; on an error or an
    interrupt the threads are stopped and waited for before the caller removes ``staging``,
    so none writes into it afterwards.
    """
    for directory in sorted({(staging / relative).parent for relative in files}):
        directory.mkdir(parents=True, exist_ok=True)
    items = [(staging / relative, text) for relative, text in files.items()]
    if len(items) < _THREADED_FILES:
        for path, text in items:
            path.write_text(text, encoding="utf-8")
            checkpoint("write_tree.file")
        return
    # Creating files in one directory is serial (the kernel locks the directory for each
    # one), so the threads take the directories in turn: one file of each, then the next.
    by_directory: dict[Path, list[tuple[Path, str]]] = {}
    for path, text in items:
        by_directory.setdefault(path.parent, []).append((path, text))
    turns = [item for turn in zip_longest(*by_directory.values()) for item in turn if item]
    pool = ThreadPoolExecutor(max_workers=_FILE_THREADS, thread_name_prefix="netpolgen-write")
    try:
        for future in [pool.submit(path.write_text, text, "utf-8") for path, text in turns]:
            future.result()
            checkpoint("write_tree.file")
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def sweep_leftovers(target: str | Path) -> list[Path]:
    """Remove what killed runs left beside ``target`` (:func:`remove_leftovers`), under the
    lock that :func:`write_tree` takes: for a run that owns the output but writes nothing (an
    in-place ``update`` with no change), which would otherwise leave a dead run's copy there."""
    target = Path(target)
    parent = target.resolve().parent
    if not parent.is_dir():
        return []
    with directory_lock(parent) as locked:
        return remove_leftovers(parent, target.name) if locked else []


def remove_leftovers(parent: Path, name: str) -> list[Path]:
    """Remove the staging copies of ``name`` that killed runs left in ``parent``.

    A run stopped by SIGKILL cannot remove its staging copy (``.NAME.`` and eight characters
    from ``tempfile``, or ``.NAME.old.`` and eight for a directory renamed aside). Called
    under :func:`~netpolgen.policy.atomic.directory_lock`, when no other run can be writing
    beside ``name``, so that every such copy is a dead run's.
    """
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:old\.)?[a-z0-9_]{{8}}$")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # not ours to remove after all: left as it is
        removed.append(Path(entry.path))
    return removed


def _check_target(target: Path, force: bool) -> None:
    if target.exists() and not target.is_dir():
        raise OutputError("exists and is not a directory", source=str(target))
    if target.is_dir() and any(target.iterdir()) and not force:
        raise OutputError(
            "output directory exists and is not empty", source=str(target),
            hint="choose a new directory, or pass --force to replace it",
        )  # fmt: skip


def _replace(staging: Path, target: Path, parent: Path) -> None:
    """Put ``staging`` in ``target``'s place; an old ``target`` survives if that fails.

    Where the system can (:func:`~netpolgen.policy.atomic.exchange`), the two directories
    swap in one step, so that even a SIGKILL leaves one of them whole at ``target``; else
    the old one is renamed aside first, and put back if the second rename fails.
    """
    checkpoint("write_tree.publish")
    if not target.is_dir():
        staging.rename(target)
        return
    if exchange(staging, target):
        checkpoint("write_tree.exchanged")
        shutil.rmtree(staging, ignore_errors=True)  # now the old output
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=parent))
    retired.rmdir()
    target.rename(retired)
    try:
        staging.rename(target)
    except BaseException:
        retired.rename(target)  # put the old output back: whole or not at all
        raise
    shutil.rmtree(retired, ignore_errors=True)
