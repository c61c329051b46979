"""``python -m deepseek_gateway`` runs the CLI."""

import sys

from .cli import main

sys.exit(main())
