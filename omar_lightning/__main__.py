"""``python -m omar_lightning ...`` is the ``omar`` command."""

from omar_lightning.cli import main

main()
