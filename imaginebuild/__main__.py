"""`python -m imaginebuild`: the same entry point as the `imaginebuild` command."""

from imaginebuild.cli.app import main

raise SystemExit(main())
