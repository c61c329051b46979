"""LAB SIMULATION: one stand-in .deb of the lab's NVIDIA mirror (control file, files, scripts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SIM_DIR = Path(__file__).resolve().parent / "sim"
ARCH = "amd64"
MAINTAINER = "deepseek-infra lab <lab@invalid>"
LIB_DIR = "usr/lib/x86_64-linux-gnu"
LAB_NVIDIA_DIR = "usr/lib/deepseek-lab/nvidia"  # simulator state shipped by the packages


@dataclass
class Package:
    name: str
    version: str
    description: str
    depends: tuple[str, ...] = ()
    conflicts: tuple[str, ...] = ()
    replaces: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    breaks: tuple[str, ...] = ()
    source: str = ""  # the source package (apt pins by src:), when it is not the package's name
    # path inside the package -> (content, mode); a content of "->target" makes a symlink
    files: dict[str, tuple[str, int]] = field(default_factory=dict)
    scripts: dict[str, str] = field(default_factory=dict)  # postinst, prerm, postrm

    def control(self) -> str:
        lines = [
            f"Package: {self.name}", f"Version: {self.version}", f"Architecture: {ARCH}",
            f"Maintainer: {MAINTAINER}", "Section: contrib/misc", "Priority: optional",
        ]
        if self.source:
            lines.insert(1, f"Source: {self.source}")
        for key, values in (("Depends", self.depends), ("Conflicts", self.conflicts), ("Breaks", self.breaks),
                            ("Replaces", self.replaces), ("Provides", self.provides)):
            if values:
                lines.append(f"{key}: {', '.join(values)}")
        lines.append(f"Description: {self.description} (LAB SIMULATION)")
        lines.append(" Stand-in built by the deepseek-infra lab; not NVIDIA software.")
        return "\n".join(lines) + "\n"


def _sim(name: str, **values: str) -> str:
    """A simulator script from lab/mirror/sim with @KEY@ placeholders filled in."""
    text = (SIM_DIR / name).read_text()
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def _marker(what: str) -> tuple[str, int]:
    return (f"LAB SIMULATION: stand-in for {what}; not NVIDIA software.\n", 0o644)


