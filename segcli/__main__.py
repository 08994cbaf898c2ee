"""`python -m segcli` (and `torchrun -m segcli`)."""

from segcli.cli import main

if __name__ == "__main__":
    main()
