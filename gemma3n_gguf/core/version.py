"""The toolkit's version, written into every file it makes (``general.converter``)."""

__version__ = "0.1.0"
