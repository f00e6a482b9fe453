"""``python -m bench``: run the benchmarks and print the tables."""

from .cli import main

if __name__ == "__main__":
    main()
