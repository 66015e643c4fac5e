"""The Python environment of local jobs, prepared once per dependency set from the machine's package registries.

* **Interpreter**: the app's own when the templates' `requires-python` (PEP 723) allows it, else a `python3.X` on
  `PATH` that it allows; neither: the failure says what the templates need.
* **Installer**: that interpreter's own pip, in a venv under `TRAINER_SPACE_HOME/envs/`. pip honours the machine's
  package configuration (pip.conf, `PIP_INDEX_URL`, `PIP_FIND_LINKS`, constraints, proxies), which is how machines
  behind company proxies and mirrors reach PyPI. (uv ignores pip's settings.)
* **torch**: no NVIDIA GPU here: a CPU build (the one pip's configuration offers when it is one, else PyTorch's CPU
  index; unreachable: PyPI's default build, which also runs on a CPU). An NVIDIA GPU: a CUDA build from the index
  the training template names for torch (`[tool.uv.sources]`: CUDA 12.6, drivers >= 525). The log says which build
  came from where.
* **Failures** name their cause (no network to a host, the Python version, disk space) and the setting that fixes
  it (`TRAINER_SPACE_LOCAL_PYTHON` among them): `EnvironmentNotReady`.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from filelock import FileLock

from ...errors import TrainerSpaceError
from ...settings import get_settings

FAILED = "Preparing the job's Python environment failed: "
FIX = " To fix it: "
LOCAL_PYTHON_FIX = "set TRAINER_SPACE_LOCAL_PYTHON to a Python that already has them (`pip install -r {req}`)"
CPU_DISK_GB = 3.0  # the environment with CPU torch is about 1.7 GB, plus pip's unpacking
CUDA_DISK_GB = 9.0  # CUDA torch and its NVIDIA libraries: about 6 GB
PIP_TIMEOUT_S = 3600


class EnvironmentNotReady(TrainerSpaceError):
    """The job's environment could not be prepared: `cause` (what happened) and `fix` (the setting that fixes it)."""

    title = "Job environment not prepared"

    def __init__(self, cause: str, fix: str) -> None:
        super().__init__(f"{FAILED}{cause}.{FIX}{fix}.")
        self.cause, self.fix = cause, fix


def split_failure(message: str) -> tuple[str, str] | None:
    """(cause, fix) of an `EnvironmentNotReady` message (a job's status message), else None."""
    if not message.startswith(FAILED) or FIX not in message:
        return None
    cause, fix = message[len(FAILED) :].split(FIX, 1)
    return cause.rstrip("."), fix.rstrip(".")


# ---------------------------------------------------------------------------------------------- what is needed
def template_needs() -> tuple[tuple[str, ...], str]:
    """Every job template's PEP 723 pins together (one environment serves them all; the GGUF converter also needs
    torch, numpy and sentencepiece, which the training template pins) and their `requires-python` together."""
    from ..spec import load_template

    templates = [load_template(name) for name in ("train.py", "export_gguf.py")]
    deps = tuple(sorted({d for t in templates for d in t.dependencies}))
    spec = ",".join(sorted({t.requires_python for t in templates if t.requires_python}))
    return deps, spec


def torch_index() -> str:
    """The index the training template names for torch (`[tool.uv.sources]`): PyTorch's CUDA 12.6 builds."""
    from ..spec import load_template, parse_pep723

    uv = parse_pep723(load_template("train.py").text).get("tool", {}).get("uv", {})
    (source,) = uv["sources"]["torch"]
    return next(i["url"] for i in uv["index"] if i["name"] == source["index"])


def cpu_torch_index() -> str:
    """PyTorch's CPU builds, beside its CUDA index (`.../whl/cu126` -> `.../whl/cpu`)."""
    return torch_index().rstrip("/").rsplit("/", 1)[0] + "/cpu"


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    why: str  # "this app's own Python" or where it was found


def _version_of(python: str) -> str | None:
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def choose_interpreter(requires_python: str, requirements: Path) -> Interpreter:
    """The app's own Python when `requires_python` allows it, else a `python3.X` on PATH that it allows."""
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(requires_python or "")
    own = platform.python_version()
    if spec.contains(own, prereleases=True):
        return Interpreter(sys.executable, own, "this app's own Python")
    for minor in range(20, 8, -1):
        found = shutil.which(f"python3.{minor}")
        version = _version_of(found) if found else None
        if found and version and spec.contains(version, prereleases=True):
            return Interpreter(found, version, f"{found} (this app's Python {own} is outside {spec})")
    raise EnvironmentNotReady(
        f"the job templates need Python {spec} (their requires-python); this app runs on Python {own} and no "
        f"python3.X on PATH is {spec}",
        f"install Python {spec} and run the app with it, or " + LOCAL_PYTHON_FIX.format(req=requirements),
    )


# ---------------------------------------------------------------------------------------------- pip
def _describe(url: str) -> str:
    """Where a distribution came from, for the log: a local file's path, else the index's host and path."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return unquote(parsed.path)
    return f"{parsed.netloc}{parsed.path.rsplit('/', 1)[0]}/"


def _torch_from_report(path: Path) -> dict[str, Any] | None:
    """torch's entry (version, whether it is a CUDA build, where from) in a `pip install --report` file."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    for item in report.get("install", []):
        meta = item.get("metadata", {})
        if str(meta.get("name", "")).lower() == "torch":
            version = str(meta.get("version", ""))
            cuda = "+cu" in version or any(str(r).startswith("nvidia-") for r in meta.get("requires_dist") or [])
            return {"version": version, "cuda": cuda, "from": _describe(item.get("download_info", {}).get("url", ""))}
    return None


def torch_note(torch: dict[str, Any], gpu: bool) -> str:
    """The log's line on torch: its version, its build for this machine, where it came from."""
    if torch["cuda"]:
        build = "a CUDA build, for this machine's NVIDIA GPU" if gpu else "a CUDA build (it runs on the CPU too)"
    else:
        build = "the CPU build" + ("" if gpu else " (no NVIDIA GPU here)")
    return f"torch {torch['version']}: {build}, from {torch['from']}"


def _run(argv: list[str], log: Any, timeout_s: float = PIP_TIMEOUT_S) -> tuple[int, list[str]]:
    """Run `argv`, copying its output into `log` line by line; (exit code, its last lines)."""
    tail: deque[str] = deque(maxlen=80)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                text=True, errors="replace")  # fmt: skip
    except OSError as err:
        return 127, [str(err)]
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            tail.append(line.rstrip())
        log.flush()
        return proc.wait(), list(tail)
    finally:
        timer.cancel()


_NETWORK = re.compile(
    r"NewConnectionError|Name or service not known|Temporary failure in name resolution|nodename nor servname|"
    r"ConnectTimeoutError|Connection refused|Network is unreachable|No route to host|ProxyError|SSLError|"
    r"CERTIFICATE_VERIFY_FAILED|ReadTimeoutError|Read timed out|Max retries exceeded|Could not fetch URL"
)
_HOST = re.compile(r"host='([^']+)'|Could not fetch URL https?://([^/:\s]+)")
_DISK = re.compile(r"No space left on device|\[Errno 28\]")
_PYTHON = re.compile(r"Requires-Python|require a different python version|requires a different Python")
_MISSING = re.compile(r"No matching distribution found for (\S+)")


def _index_urls(lines: list[str]) -> list[str]:
    """The http(s) indexes pip looked in ("Looking in indexes: ..."; none printed: PyPI's default)."""
    urls: list[str] = []
    for line in lines:
        if line.startswith("Looking in indexes:"):
            urls += [u.strip() for u in line.split(":", 1)[1].split(",") if u.strip().startswith(("http:", "https:"))]
    return list(dict.fromkeys(urls)) or ["https://pypi.org/simple/"]


def unreachable(urls: list[str], timeout_s: float = 5.0) -> list[str]:
    """The hosts of `urls` this machine cannot connect to (the environment's proxy settings apply): pip says so only
    in its retry warnings, which `PIP_RETRIES=0` or a quiet pip leaves out."""
    import urllib.error
    import urllib.request

    hosts: list[str] = []
    for url in urls:
        try:
            urllib.request.urlopen(url, timeout=timeout_s).close()
        except urllib.error.HTTPError:
            continue  # it answered
        except (urllib.error.URLError, OSError):
            hosts.append(urlparse(url).hostname or url)
    return list(dict.fromkeys(hosts))


def explain_pip_failure(
    lines: list[str], python_version: str, env_dir: Path, requirements: Path
) -> EnvironmentNotReady:
    """What made pip fail, from its last lines: the network (which host), the Python version, disk space, a missing
    release; each with the setting that fixes it."""
    text = "\n".join(lines)
    local = LOCAL_PYTHON_FIX.format(req=requirements)
    if _DISK.search(text):
        free = shutil.disk_usage(env_dir.parent).free / 1e9 if env_dir.parent.exists() else 0.0
        return EnvironmentNotReady(
            f"no disk space left ({free:.1f} GB free where the environment goes, {env_dir.parent})",
            f"free about {CPU_DISK_GB:g} GB there (a CUDA build: {CUDA_DISK_GB:g} GB), or set TRAINER_SPACE_HOME to a "
            f"folder on a disk with room; or {local}",
        )
    if _PYTHON.search(text):
        return EnvironmentNotReady(
            f"a pinned package needs another Python version than {python_version}",
            f"run the app with a Python the pins support, or {local}",
        )
    named = [h for m in _HOST.finditer(text) for h in m.groups() if h] if _NETWORK.search(text) else []
    hosts = list(dict.fromkeys(named)) or (
        [urlparse(u).hostname or u for u in _index_urls(lines)] if _NETWORK.search(text) else []
    )
    if not hosts and "(from versions: none)" in text:  # nothing found at all: can the indexes be reached?
        hosts = unreachable(_index_urls(lines))
    if hosts:
        return EnvironmentNotReady(
            f"no network to {', '.join(hosts)} (pip could not connect)",
            "let pip reach a package index (a proxy: HTTPS_PROXY or `proxy` in pip.conf; a mirror: PIP_INDEX_URL), "
            f"or {local}",
        )
    missing = next((m.group(1) for line in reversed(lines) if (m := _MISSING.search(line))), None)
    if missing:
        return EnvironmentNotReady(
            f"no index pip uses offers {missing} for Python {python_version}",
            f"point pip at an index that has it (PIP_INDEX_URL, PIP_EXTRA_INDEX_URL), or {local}",
        )
    last = next((line for line in reversed(lines) if line.startswith("ERROR:")), lines[-1] if lines else "")
    return EnvironmentNotReady(f"pip failed ({last.removeprefix('ERROR: ')[:200]})", f"see the job's log; or {local}")


# ---------------------------------------------------------------------------------------------- the environment
def environment_dir(dependencies: tuple[str, ...], python_version: str, cuda: bool) -> Path:
    """One environment per dependency set, Python minor version and torch build (CPU or CUDA)."""
    key = "\n".join([*sorted(dependencies), python_version.rsplit(".", 1)[0], "cuda" if cuda else "cpu"])
    return get_settings().home / "envs" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _torch_pin(dependencies: tuple[str, ...]) -> str:
    return next((d for d in dependencies if re.match(r"torch\s*(?:[=<>~!]|$)", d)), "torch")


def _install_torch(pip: list[str], pin: str, env_dir: Path, log: Any, cuda: bool) -> dict[str, Any] | None:
    """torch first, from where this machine's build comes from; None: leave it to pip's configuration.

    GPU: the template's CUDA index. No GPU: what pip's configuration offers when it is a CPU build, else PyTorch's
    CPU index. An index that cannot be reached is said, and pip's configuration gives torch (PyPI's build).
    """
    report = env_dir / ".torch-report.json"
    if not cuda:
        code, _ = _run([*pip, "install", "--dry-run", "--no-deps", "--ignore-installed", "--quiet", "--report",
                        str(report), pin], log)  # fmt: skip
        offered = _torch_from_report(report) if code == 0 else None
        if offered is not None and not offered["cuda"]:
            return None  # pip's configuration has a CPU build: the main install takes it
    index = torch_index() if cuda else cpu_torch_index()
    log.write(f"torch: {'a CUDA build for this NVIDIA GPU' if cuda else 'the CPU build (no NVIDIA GPU here)'} "
              f"from {index} ...\n")  # fmt: skip
    code, lines = _run([*pip, "install", "--no-deps", "--index-url", index, "--report", str(report), pin], log)
    if code == 0:
        return _torch_from_report(report)
    host = urlparse(index).hostname
    reason = "cannot be reached" if _NETWORK.search("\n".join(lines)) or unreachable([index]) else "has no such build"
    log.write(f"NOTE: {host} {reason}: torch comes from pip's configured index instead "
              + ("(PyPI's build needs a recent NVIDIA driver).\n" if cuda else
                 "(PyPI's Linux build is its CUDA one, a few GB more; it runs on the CPU too). For the CPU build, "
                 f"let pip reach {index} (PIP_EXTRA_INDEX_URL) or a folder with its wheel (PIP_FIND_LINKS).\n"))  # fmt: skip
    return None


def prepare_environment(dependencies: tuple[str, ...], requires_python: str, log: Any, *, cuda: bool,
                        on_prepare: Any = None) -> str:  # fmt: skip
    """A Python with `dependencies`, prepared once (then reused): see the module's docstring. `cuda`: this machine
    has an NVIDIA GPU. Progress goes to `log` (the job's log file); `on_prepare()` is called when it is not ready
    yet. Raises EnvironmentNotReady with the cause and the fix."""
    home = get_settings().home
    requirements = home / "envs" / "requirements.txt"
    requirements.parent.mkdir(parents=True, exist_ok=True)
    requirements.write_text("\n".join(dependencies) + "\n")
    interpreter = choose_interpreter(requires_python, requirements)
    env_dir = environment_dir(dependencies, interpreter.version, cuda)
    python = env_dir / "bin" / "python"
    if (env_dir / ".ready").is_file():
        return str(python)
    if on_prepare is not None:
        on_prepare()
    with FileLock(env_dir.with_suffix(".lock")):  # one preparation per environment at a time
        if (env_dir / ".ready").is_file():  # another job prepared it meanwhile
            return str(python)
        need = CUDA_DISK_GB if cuda else CPU_DISK_GB
        free = shutil.disk_usage(env_dir.parent).free / 1e9
        if free < need:
            raise EnvironmentNotReady(
                f"not enough disk space: {free:.1f} GB free in {env_dir.parent}, about {need:g} GB needed",
                "free some space, or set TRAINER_SPACE_HOME to a folder on a disk with room; or "
                + LOCAL_PYTHON_FIX.format(req=requirements),
            )
        log.write(f"Preparing the job's Python environment in {env_dir} (once; a few minutes) with "
                  f"{interpreter.why}, Python {interpreter.version} (the templates need {requires_python}), and "
                  "its pip (pip's configuration applies: pip.conf, PIP_INDEX_URL, PIP_FIND_LINKS) ...\n")  # fmt: skip
        log.flush()
        code, lines = _run([interpreter.path, "-m", "venv", "--clear", str(env_dir)], log, timeout_s=600)
        if code != 0:
            missing_pip = any("ensurepip" in line for line in lines)
            raise EnvironmentNotReady(
                "Python's venv module cannot make an environment with pip here"
                if missing_pip else f"`python -m venv` failed ({lines[-1] if lines else code})",
                ("install it (Debian/Ubuntu: apt install python3-venv), or " if missing_pip else "")
                + LOCAL_PYTHON_FIX.format(req=requirements),
            )  # fmt: skip
        pip = [str(python), "-m", "pip", "--disable-pip-version-check", "--no-input"]
        torch = _install_torch(pip, _torch_pin(dependencies), env_dir, log, cuda)
        report = env_dir / ".install-report.json"
        code, lines = _run([*pip, "install", "--progress-bar", "off", "--report", str(report), *dependencies], log)
        if code != 0:
            raise explain_pip_failure(lines, interpreter.version, env_dir, requirements)
        torch = _torch_from_report(report) or torch
        if torch is not None:
            log.write(torch_note(torch, cuda) + "\n")
        (env_dir / ".ready").write_text("ok\n")
    return str(python)
