"""`python -m convcheck`: the same CLI as the `convcheck` console script."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="convcheck")
