"""llama.cpp's HF-to-GGUF converter for local GGUF exports (and the tests), fetched once per machine.

No registry ships ``convert_hf_to_gguf.py`` as a package, but the llama-cpp-python sdist vendors the
whole llama.cpp tree (converter, its ``conversion/`` package and its own ``gguf-py``). We download
that sdist once with pip (~80 s, 76 MB) and keep the tree under ``~/.cache/trainer-space`` (never in
git). ``LLAMA_CPP_PYTHON_VERSION`` 0.3.36 vendors llama.cpp commit 0c1e57098 = release tag b11312,
the same release the export job's image is pinned to (``LLAMA_CPP_IMAGE`` in export_gguf.py).

Optional and manual: ``python -m trainer_space.jobs.backends.llama_cpp --build`` compiles ``llama-quantize``
and ``llama-completion`` from that tree (about 10 minutes on 2 cores); local exports then offer K-quants.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from filelock import FileLock

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
LLAMA_CPP_TAG = "b11312"  # commit 0c1e57098, what llama-cpp-python 0.3.36 vendors
_SKIP_DIRS = {"models", "media", "docs", "examples", "benches", "pocs"}  # large and not needed here


def cache_root() -> Path:
    """Where fetched llama.cpp trees live (``$TRAINER_SPACE_CACHE`` or ``~/.cache/trainer-space``)."""
    default = Path.home() / ".cache" / "trainer-space"
    return Path(os.environ.get("TRAINER_SPACE_CACHE", default))


def _download_sdist(dest: Path) -> Path:
    """``pip download`` the llama-cpp-python sdist (no build, no dependencies) into ``dest``."""
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    argv += [f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(dest)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"pip download failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    found = sorted(dest.glob("llama_cpp_python-*.tar.gz"))
    if not found:
        raise RuntimeError(f"pip download produced no sdist in {dest}")
    return found[0]


def _extract_vendor_tree(sdist: Path, target: Path) -> None:
    """Extract ``vendor/llama.cpp`` from the sdist into ``target`` (skipping big unused folders)."""
    prefix = f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}/vendor/llama.cpp/"
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".extract-"))
    try:
        with tarfile.open(sdist) as tar:
            members = []
            for member in tar.getmembers():
                if not member.name.startswith(prefix) or member.name == prefix.rstrip("/"):
                    continue
                rel = member.name[len(prefix) :]
                if rel.split("/", 1)[0] in _SKIP_DIRS:
                    continue
                member.name = rel
                members.append(member)
            tar.extractall(staging, members=members, filter="data")
        if not (staging / "convert_hf_to_gguf.py").is_file():
            raise RuntimeError(f"{sdist.name} has no vendor/llama.cpp/convert_hf_to_gguf.py")
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def llama_cpp_converter() -> Path:
    """Return a llama.cpp source directory holding ``convert_hf_to_gguf.py``, ``conversion/``, ``gguf-py/``.

    Fetched from PyPI on first use (about 90 s) and reused afterwards. Run the converter with
    ``PYTHONPATH=<dir>/gguf-py``: PyPI's gguf 0.19 is older than what this converter needs.
    """
    target = cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"
    if (target / "convert_hf_to_gguf.py").is_file():
        return target
    with FileLock(cache_root() / ".llama-cpp.lock"):  # parallel runs fetch only once
        if (target / "convert_hf_to_gguf.py").is_file():
            return target
        with tempfile.TemporaryDirectory(dir=cache_root(), prefix=".download-") as tmp:
            _extract_vendor_tree(_download_sdist(Path(tmp)), target)
    return target


def llama_cpp_bin_dir() -> Path | None:
    """Directory with locally built ``llama-quantize`` (and ``llama-completion``), or None if not built.

    ``$LLAMA_CPP_BIN_DIR`` wins when set; otherwise the build folder made by ``--build``.
    """
    candidates = [os.environ.get("LLAMA_CPP_BIN_DIR", "")]
    candidates.append(str(cache_root() / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}" / "build" / "bin"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "llama-quantize").is_file():
            return Path(candidate)
    return None


def build_llama_cpp_tools(jobs: int | None = None) -> Path:
    """Compile ``llama-quantize`` and ``llama-completion`` (CPU, Release) in the cached tree."""
    src = llama_cpp_converter()
    build = src / "build"
    configure = ["cmake", "-S", str(src), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    configure += ["-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF"]
    configure += ["-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF"]
    compile_ = ["cmake", "--build", str(build), "-j", str(jobs or os.cpu_count() or 2)]
    compile_ += ["--target", "llama-quantize", "llama-completion"]
    for argv in (configure, compile_):
        subprocess.run(argv, check=True, timeout=3600)
    return build / "bin"


if __name__ == "__main__":  # pragma: no cover - manual use
    print(llama_cpp_converter())
    if "--build" in sys.argv:
        print(build_llama_cpp_tools())
