"""``python -m serving`` (``python -m ludora_serving`` in the light wheel): the serving CLI."""

from serving.cli import main

main()
