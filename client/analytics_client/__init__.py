"""A client library for the analytics backend."""
