"""The package's JSON manifest: every step's input key, its outputs (hash, size) and its result.

A step is up to date when its key (a hash of the inputs and options it depends on) is the one
recorded and each recorded output still has its recorded size and modification time; then it
is skipped and nothing is rewritten. The manifest is saved after every step, so a run that is
interrupted resumes at the first step it had not finished.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gemma3n_gguf import __version__
from gemma3n_gguf.core.atomic import write_text_atomically
from gemma3n_gguf.core.errors import PackageError

MANIFEST_NAME = "manifest.json"
SCHEMA = "gemma3n-gguf package manifest v1"
_CHUNK = 1 << 24


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def step_key(*parts: Any) -> str:
    """A stable hash of JSON-able inputs and options (the tool's version included)."""
    text = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Output:
    path: str  # relative to the package root
    sha256: str
    bytes: int
    mtime_ns: int

    @classmethod
    def of(cls, root: Path, path: Path) -> Output:
        stat = path.stat()
        return cls(path.relative_to(root).as_posix(), file_sha256(path), stat.st_size, stat.st_mtime_ns)

    def unchanged(self, root: Path) -> bool:
        path = root / self.path
        if not path.is_file():
            return False
        stat = path.stat()
        return stat.st_size == self.bytes and stat.st_mtime_ns == self.mtime_ns


@dataclass
class Step:
    key: str
    outputs: list[Output]
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    root: Path
    options: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Step] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Manifest:
        path = root / MANIFEST_NAME
        if not path.is_file():
            return cls(root)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            steps = {name: Step(s["key"], [Output(**o) for o in s["outputs"]], s.get("result", {}))
                     for name, s in data["steps"].items()}
        except (ValueError, KeyError, TypeError) as exc:
            raise PackageError(f"{path} is not a package manifest ({exc}); remove it to rebuild everything") from exc
        return cls(root, data.get("options", {}), steps)

    def current(self, name: str, key: str) -> Step | None:
        """The recorded step when it is up to date, else None."""
        step = self.steps.get(name)
        if step is None or step.key != key or not all(o.unchanged(self.root) for o in step.outputs):
            return None
        return step

    def record(self, name: str, key: str, outputs: list[Path], result: dict[str, Any] | None = None) -> Step:
        step = Step(key, [Output.of(self.root, p) for p in outputs], result or {})
        self.steps[name] = step
        self.save()
        return step

    def retain(self, names: list[str]) -> None:
        """Forget steps this run did not ask for (a scheme dropped from --schemes)."""
        if set(self.steps) - set(names):
            self.steps = {name: step for name, step in self.steps.items() if name in names}
            self.save()

    def files(self) -> list[Output]:
        """Every output of every step, once, in step order."""
        seen: dict[str, Output] = {}
        for step in self.steps.values():
            for output in step.outputs:
                seen.setdefault(output.path, output)
        return list(seen.values())

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "tool": f"gemma3n-gguf {__version__}", "options": self.options,
                "steps": {name: {"key": s.key, "outputs": [o.__dict__ for o in s.outputs], "result": s.result}
                          for name, s in self.steps.items()}}

    def save(self) -> None:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"
        path = self.root / MANIFEST_NAME
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text_atomically(path, text)
