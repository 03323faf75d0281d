"""`python -m convcheck`: the same CLI as the `convcheck` console script."""

from .cli import entry

if __name__ == "__main__":
    entry()
