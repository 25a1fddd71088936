"""``python -m smsbot`` is the ``smsbot`` command."""

from smsbot.cli import main

main()
