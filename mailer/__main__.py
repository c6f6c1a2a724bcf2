"""``python -m mailer``: the same CLI as the ``mailer`` console script."""

from mailer.cli import main

main()
