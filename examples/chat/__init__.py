"""The chat example: rooms as topics, a member count per room, messages across instances."""
