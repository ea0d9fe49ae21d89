"""The todos example: a keyed list rendered by LiveTemplate."""
