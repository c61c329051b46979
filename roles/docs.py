"""The README's "Variables" section, generated from every role's defaults.

    python -m roles.docs          # rewrite the section in README.md
    python -m roles.docs --check  # exit 1 when README.md is out of date (a unit test runs this)
"""

from __future__ import annotations

import sys
from pathlib import Path

from deepseek_infra.versions import Version
from roles.settings import ROLE_FIELDS

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- variables:start -->", "<!-- variables:end -->"


def _default(value) -> str:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, Version):  # as host data writes it: '550.90.12'
        value = str(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def render_variables() -> str:
    parts = []
    for attribute, model in ROLE_FIELDS.items():
        parts.append(f"### {attribute}\n\n| variable | default | meaning |\n|---|---|---|")
        for name, field in model.model_fields.items():
            default = _default(field.get_default(call_default_factory=True))
            parts.append(f"| `{name}` | `{default}` | {field.description or ''} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def updated_readme(text: str) -> str:
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{render_variables()}{END}{tail}"


def main(argv: list[str]) -> int:
    text = README.read_text()
    if START not in text or END not in text:
        print(f"{README}: markers {START} / {END} missing", file=sys.stderr)
        return 1
    new = updated_readme(text)
    if "--check" in argv:
        if new != text:
            print("README.md variables are out of date: run `python -m roles.docs`", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
