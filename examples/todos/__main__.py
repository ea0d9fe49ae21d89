"""Serve the todos example on http://127.0.0.1:8000 with the embedded defaults (memory
session store, in-process broadcaster)."""

from __future__ import annotations

import uvicorn


def main() -> None:
    uvicorn.run(
        "examples.todos.app:app",
        host="127.0.0.1",
        port=8000,
        ws_per_message_deflate=False,  # deflate costs 100-300 KB per connection
        log_level="info",
    )


if __name__ == "__main__":
    main()
