"""`python -m sweeper`: run the sweeper loop until SIGTERM or SIGINT."""

from sweeper.main import main

main()
