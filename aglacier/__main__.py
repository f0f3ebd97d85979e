"""``python -m aglacier``: the same as the ``aglacier`` command."""

from aglacier.cli.main import main

raise SystemExit(main())
