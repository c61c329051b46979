"""Text clean-up shared by the parsers of command output."""

from __future__ import annotations

import re

# nvidia-smi and others colour or underline headers when they think a terminal is attached.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def clean_line(line: str) -> str:
    """Drop ANSI escapes and a trailing CR/LF (CRLF captures), keep tabs and spaces."""
    return _ANSI_ESCAPE.sub("", line).rstrip("\r\n")
