"""Importing python-iptables quickly.

Its import looks for libraries the slow way: `ctypes.util.find_library` runs
`ldconfig -p` (and gcc and ld when that fails) once per name it tries, `ldconfig -N -v`
scans every library directory for the xtables extensions, and its `distutils` import
resolves to setuptools' copy in a venv (setuptools, pkg_resources).  Together about
0.2-0.5 s of every `nodewall apply`.  Here, for the import only: its own wrapper
library is looked for next to the package first, system libraries in the usual
library directories (the slow lookup stays the fallback), the extensions directory is
given when one of the usual ones exists, and distutils is the standard library's.
The environment is put back afterwards (the tools nodewall runs never see it)."""
from __future__ import annotations

import contextlib
import ctypes.util
import functools
import importlib.util
import os
import sys
import sysconfig
import warnings
from collections.abc import Callable, Iterator
from types import ModuleType

_MULTIARCH = sysconfig.get_config_var("MULTIARCH") or ""
LIB_DIRS = tuple(d for d in (f"/usr/lib/{_MULTIARCH}" if _MULTIARCH else "",
                             f"/lib/{_MULTIARCH}" if _MULTIARCH else "",
                             "/usr/lib64", "/lib64", "/usr/lib", "/lib", "/usr/local/lib")
                 if d)


@functools.cache
def _listing(directory: str) -> tuple[str, ...]:
    try:
        return tuple(os.listdir(directory))
    except OSError:
        return ()


def _preference(soname: str, prefix: str) -> tuple[int, int]:
    """The highest major version first, then its shortest name (the soname itself)."""
    major = soname[len(prefix):].split(".")[0]
    return (int(major) if major.isdigit() else -1, -len(soname))


@functools.cache
def soname_in_lib_dirs(name: str) -> str | None:
    """`libNAME.so.N` from the first usual library directory that has one the dynamic
    loader can load by that name (the highest major version first): what
    ctypes.util.find_library answers, without running ldconfig; else None."""
    prefix = f"lib{name}.so."
    for d in LIB_DIRS:
        found = sorted((f for f in _listing(d) if f.startswith(prefix)),
                       key=lambda f: _preference(f, prefix), reverse=True)
        for soname in found:
            try:
                ctypes.CDLL(soname)  # python-iptables loads it so, without a try
            except OSError:  # not in the loader's path, or a dangling link
                continue
            return soname
    return None


def xtables_libdir() -> str | None:
    """The xtables extensions directory among the usual ones (None: let it search)."""
    return next((p for d in LIB_DIRS if os.path.isdir(p := os.path.join(d, "xtables"))),
                None)


@contextlib.contextmanager
def _quick_find_library() -> Iterator[None]:
    slow: Callable[[str], str | None] = ctypes.util.find_library

    def find(name: str) -> str | None:
        return soname_in_lib_dirs(name) or slow(name)

    ctypes.util.find_library = find
    try:
        yield
    finally:
        ctypes.util.find_library = slow


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """VALUES set where the environment does not say otherwise, then put back."""
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def _import_settings() -> dict[str, str]:
    out = {"SETUPTOOLS_USE_DISTUTILS": "stdlib"}
    spec = importlib.util.find_spec("iptc")
    if spec is not None and spec.origin:  # libxtwrapper sits next to the package
        out["IPTABLES_LIBDIR"] = os.path.dirname(os.path.dirname(spec.origin))
    libdir = xtables_libdir()
    if libdir is not None:
        out["XTABLES_LIBDIR"] = libdir
    return out


def _standard_distutils() -> None:
    """Make `import distutils` the standard library's, not setuptools' copy (its shim
    is installed at interpreter start-up and ignores the environment variable then)."""
    hack = sys.modules.get("_distutils_hack")
    remove = getattr(hack, "remove_shim", None)
    if remove is not None and "distutils" not in sys.modules:
        remove()


def import_iptc() -> ModuleType:
    """`import iptc`, quickly (see the module's docstring)."""
    if "iptc" in sys.modules:
        return sys.modules["iptc"]
    _standard_distutils()
    with _environment(_import_settings()), _quick_find_library(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the stdlib's distutils
        import iptc
    return iptc
