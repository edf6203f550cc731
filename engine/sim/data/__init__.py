"""Packaged simulator data (the default instrument master), read through importlib.resources."""
