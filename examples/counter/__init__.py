"""The counter example: the smallest live app."""
