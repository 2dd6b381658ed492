"""A tiny package installed into a virtualenv by the build stage."""
__version__ = "1.2.0"
