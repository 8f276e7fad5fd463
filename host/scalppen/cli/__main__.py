"""``python -m scalppen.cli``: the same as the ``scalppen`` command."""

from scalppen.cli.main import main

main()
