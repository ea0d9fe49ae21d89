"""Render the todos template for a sample state and show the tree a client receives."""

from __future__ import annotations

import json
from pathlib import Path

from livetemplate import Template

TEMPLATE = Path(__file__).parent / "templates" / "todos.html"


def main() -> None:
    template = Template.from_file(TEMPLATE)
    state = {
        "todos": [{"id": 1, "title": "Write the engine", "done": True}, {"id": 2, "title": "Serve it", "done": False}]
    }
    print(template.render(state))
    renderer = template.renderer()
    print(json.dumps(renderer.render(state), indent=1))
    state["todos"][1]["done"] = True
    print(json.dumps(renderer.render(state)))


if __name__ == "__main__":
    main()
