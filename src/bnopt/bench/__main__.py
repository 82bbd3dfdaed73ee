"""`python -m bnopt.bench` (`make bench`)."""

from . import main

main()
