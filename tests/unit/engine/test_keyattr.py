"""Loop items are keyed by the data-key of their root element, read from the statics."""

from __future__ import annotations

import pytest

from livetemplate import Template
from tests.support.replay import replay


@pytest.mark.parametrize(
    ("item", "key"),
    [
        ('<li data-key="{{ t.id }}"{% if t.done %} class="done"{% endif %}>{{ t.title }}</li>', "1"),
        ("<li data-lvt-key='t-{{ t.id }}' class=x>{{ t.title }}</li>", "t-1"),
        ("\n  <!-- row -->\n  <tr data-key={{ t.id }}><td>{{ t.title }}</td></tr>", "1"),
        ('<li {% if t.done %}class="done" {% endif %}data-key="{{ t.id }}">{{ t.title }}</li>', None),
        ("{{ t.title }}<li data-key='{{ t.id }}'></li>", None),
        ('<li data-key="{{ t.id if t.id }}">{{ t.title }}</li>', "1"),
    ],
)
def test_the_key_comes_from_the_root_elements_data_key(item: str, key: str | None) -> None:
    template = Template("{% for t in todos %}" + item + "{% endfor %}")
    tree = template.renderer().render({"todos": [{"id": 1, "title": "a", "done": True}]})
    (only,) = tree["0"]["d"]
    if key is None:
        assert len(only["_k"]) == 16  # no usable data-key: a content hash
    else:
        assert only["_k"] == key


def test_an_empty_data_key_still_keys_the_item() -> None:
    """The client treats an empty ``_k`` as no key (its ops would be dropped)."""
    template = Template('<ul>{% for t in todos %}<li data-key="{{ t.name }}">{{ t.title }}</li>{% endfor %}</ul>')
    sent = replay(
        template,
        [
            {"todos": [{"name": "", "title": "x"}, {"name": "b", "title": "y"}]},
            {"todos": [{"name": "", "title": "x2"}, {"name": "b", "title": "y"}]},
            {"todos": [{"name": "b", "title": "y"}]},
        ],
    )
    assert [item["_k"] for item in sent[0]["0"]["d"]] == ["#", "b"]
    assert sent[1] == {"0": [["u", "#", {"1": "x2"}]]}
    assert sent[2] == {"0": [["r", "#"]]}


def test_a_namespace_change_before_the_key_keys_items_by_content() -> None:
    """Reading the key alone would run the namespace assignment twice: such items are keyed by content."""
    template = Template(
        "{% set ns = namespace(n=0) %}"
        '{% for x in xs %}{% set ns.n = ns.n + 1 %}<li data-key="{{ x }}">{{ ns.n }}</li>{% endfor %}'
    )
    sent = replay(template, [{"xs": ["a", "b"]}, {"xs": ["c", "a", "b"]}, {"xs": ["b"]}])
    assert all(len(item["_k"]) == 16 for item in sent[0]["0"]["d"])
