"""``python -m deepseek_node.gateway`` runs the CLI (as the ``deepseek-gateway`` console script does)."""

import sys

from .cli import main

sys.exit(main())
