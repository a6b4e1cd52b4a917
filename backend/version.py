"""The package version, in one place (stages record it; the CLI prints it)."""

__version__ = "0.2.0"
