"""``python -m wskit.cli``: the ``wskit`` command, as ``python -m wskit`` runs it."""

from . import main

if __name__ == "__main__":
    main()
