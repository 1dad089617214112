"""`python -m parallel_mcp` is the `parallel-mcp` command."""

import sys

from parallel_mcp.cli import main

sys.exit(main())
