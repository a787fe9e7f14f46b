"""Serving: batch scoring of history files (and, later, the HTTP service and exports)."""
