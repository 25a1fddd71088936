"""Developer tools run from a checkout, not shipped in the wheel: the demo clinic and the
README's dashboard screenshots (``python -m devtools.screenshots docs/screenshots``)."""
