"""`python -m nodewall.engine.cli`: the same as the `nodewall` command."""
import sys

from nodewall.engine.cli.main import main

sys.exit(main())
