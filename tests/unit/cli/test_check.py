"""``livetemplate check``: each finding on one line with file, line and column; JSON; exit status."""

from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import pytest

from livetemplate import Environment, Template, TemplateError
from livetemplate.cli import main
from livetemplate.cli.check import Finding, check_file, check_paths, find_templates


def write(directory: Path, name: str, source: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("source", "code", "line", "column", "message"),
    [
        ("<p>\n  {% if x %}\n", "syntax", 2, 13, "Unexpected end of template"),
        ("<p>{{ x + }}</p>", "syntax", 1, 11, "unexpected 'end of print statement'"),
        ('{% import "m.html" as m %}', "unsupported", 1, 1, "{% import %} is not supported"),
        ("<p>\n{% autoescape false %}{{ x }}{% endautoescape %}", "unsupported", 2, 1, "autoescape"),
        ("<p>{{ title|shout }}</p>", "unknown-filter", 1, 13, "No filter named 'shout'."),
        ("{% if x is odd_enough %}y{% endif %}", "unknown-test", 1, 12, "No test named 'odd_enough'."),
    ],
)
def test_errors(tmp_path: Path, source: str, code: str, line: int, column: int, message: str) -> None:
    path = write(tmp_path, "page.html", source)
    [finding] = check_file(path)
    assert (finding.code, finding.level, finding.line, finding.column) == (code, "error", line, column)
    assert message in finding.message
    assert str(finding).startswith(f"{path}:{line}:{column}: error: ")
    with pytest.raises(TemplateError) as raised:
        Template.from_file(path)  # the app fails the same way
    assert (raised.value.detail, raised.value.lineno) == (finding.message, line)


def test_unkeyed_loops_over_collections_warn(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "list.html",
        """
        <nav>{% for name in ["all", "done"] %}<a>{{ name }}</a>{% endfor %}</nav>
        {% for n in range(3) %}<i>{{ n }}</i>{% endfor %}
        <ul>
          {% for todo in todos if not todo.done %}<li>{{ todo.title }}</li>{% endfor %}
        </ul>
        <table>{% for row in report.rows|sort %}<tr data-key="{{ row.id }}"><td>{{ row.x }}</td></tr>
        {% endfor %}</table>
        {% for k, v in settings.items() %}<dt>{{ k }}</dt>{% endfor %}
        """,
    )
    findings = check_file(path)
    assert [(f.line, f.column, f.level, f.code) for f in findings] == [
        (4, 3, "warning", "unkeyed-loop"),
        (8, 1, "warning", "unkeyed-loop"),
    ]
    assert "loop over todos without data-key" in findings[0].message
    assert 'data-key="{{ todo.id }}"' in findings[0].message
    assert "settings.items(...)" in findings[1].message


def test_includes_resolve_next_to_the_file_and_report_their_own_file(tmp_path: Path) -> None:
    write(tmp_path, "partials/row.html", "{% for c in cells %}<td>{{ c }}</td>{% endfor %}\n")
    write(tmp_path, "partials/bad.html", "<p>\n{{ x|nope }}\n")
    page = write(tmp_path, "page.html", '<table>{% include "partials/row.html" %}</table>')
    broken = write(tmp_path, "broken.html", '{% include "partials/bad.html" %}')
    report = check_paths([tmp_path])
    assert report.files == 4
    lines = [str(f) for f in report.findings]
    row = tmp_path / "partials" / "row.html"
    bad = tmp_path / "partials" / "bad.html"
    assert f"{bad}:2:6: error: No filter named 'nope'." in lines
    assert sum(line.startswith(f"{row}:1:1: warning:") for line in lines) == 1  # once, though found twice
    assert not any(line.startswith(str(page)) or line.startswith(str(broken)) for line in lines)


def test_search_path_and_environment(tmp_path: Path) -> None:
    write(tmp_path, "layouts/base.html", "<main>{% block body %}{% endblock %}</main>")
    child = write(
        tmp_path, "pages/child.html", '{% extends "layouts/base.html" %}{% block body %}{{ x|shout }}{% endblock %}'
    )
    [not_found] = check_file(child)
    assert not_found.level == "error"
    [unknown] = check_file(child, search_path=[tmp_path])
    assert unknown.code == "unknown-filter"
    environment = Environment(loader=tmp_path, filters={"shout": str.upper})
    assert check_file(child, environment) == []


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    binary = tmp_path / "blob.html"
    binary.write_bytes(b"\xff\xfe\x00")
    [finding] = check_file(binary)
    assert finding.code == "read" and finding.level == "error"
    report = check_paths([tmp_path / "missing.html"])
    assert [f.message for f in report.findings] == ["no such file or directory"]


def test_directories_skip_hidden_and_vendored_folders(tmp_path: Path) -> None:
    wanted = [write(tmp_path, n, "x") for n in ("a.html", "sub/b.jinja", "sub/c.j2")]
    for skipped in (".git/x.html", "node_modules/pkg/y.html", "sub/__pycache__/z.html", "notes.txt"):
        write(tmp_path, skipped, "x")
    assert list(find_templates([tmp_path])) == sorted(wanted)


def test_command_output_and_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.html", "<p>{{ x }}</p>")
    warn = write(tmp_path, "warn.html", "{% for i in items %}<b>{{ i }}</b>{% endfor %}")
    assert main(["check", str(good)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "1 template checked: no problems" in captured.err
    assert main(["check", str(good), str(warn)]) == 0  # warnings do not fail...
    captured = capsys.readouterr()
    assert captured.out.startswith(f"{warn}:1:1: warning: loop over items")
    assert "2 templates checked: 1 warning" in captured.err
    assert main(["check", "--strict", str(warn)]) == 1  # ...unless asked to
    capsys.readouterr()
    bad = write(tmp_path, "bad.html", "{{ x|nope }}")
    assert main(["check", "--format", "json", str(tmp_path)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["files"], report["errors"], report["warnings"]) == (3, 1, 1)
    assert report["findings"][0] == {
        "path": str(bad),
        "line": 1,
        "column": 6,
        "level": "error",
        "code": "unknown-filter",
        "message": "No filter named 'nope'.",
    }


def test_command_with_an_app_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = write(
        tmp_path, "page.html", '{% for todo in todos %}<li data-key="{{ todo.id }}">{{ todo.title }}</li>{% endfor %}'
    )
    assert main(["check", "--environment", "examples.todos.app:app", str(page)]) == 0
    with pytest.raises(SystemExit, match=r"examples\.todos\.app:Todos is a type, not an Environment"):
        main(["check", "--environment", "examples.todos.app:Todos", str(page)])


def test_environment_and_search_path_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="exclude each other"):
        main(["check", "--environment", "examples.todos.app:app", "-I", str(tmp_path), str(tmp_path)])
    with pytest.raises(SystemExit, match="Could not import module"):
        main(["check", "--environment", "no_such_module:env", str(tmp_path)])


def test_progress_over_many_files(tmp_path: Path) -> None:
    for n in range(12):
        write(tmp_path, f"t{n:02}.html", "<p>{{ n }}</p>")
    progress = io.StringIO()
    report = check_paths([tmp_path], progress=progress)
    assert report.files == 12 and report.findings == []
    shown = progress.getvalue()
    assert "[ 1/12]" in shown and "[12/12]" in shown and shown.endswith("\r")


def test_finding_is_one_line() -> None:
    assert str(Finding("a.html", 3, 7, "warning", "unkeyed-loop", "m")) == "a.html:3:7: warning: m"


def test_several_loops_on_one_line_each_get_their_column(tmp_path: Path) -> None:
    line = (
        '{% for x in "abc" %}{{ x }}{% endfor %}{% for x in {"a": 1} %}<b>{{ x }}</b>{% endfor %}'
        '{% for x in ["b", "a"]|sort %}<b>{{ x }}</b>{% endfor %}'
        "{% for x in rows['k'] %}<i>{{ x }}</i>{% endfor %}{% for x in rows|reverse %}<i>{{ x }}</i>{% endfor %}"
        "{% for x in (a or b) %}<i>{{ x }}</i>{% endfor %}{% for a, b in pairs %}<i>{{ a }}</i>{% endfor %}"
    )
    path = write(tmp_path, "line.html", line + "\n")
    findings = check_file(path)
    starts = [m.start() + 1 for m in re.finditer(r"\{% for", line)]
    assert [f.column for f in findings] == starts[3:]  # literals are fine; the four others warn
    assert [f.message.split(" without")[0] for f in findings] == [
        "loop over rows['k']",
        "loop over rows|reverse",
        "loop over a collection",
        "loop over pairs",
    ]
    assert 'data-key="{{ item.id }}"' in findings[-1].message  # a tuple target: no name to suggest


def test_super_misused_is_unsupported(tmp_path: Path) -> None:
    write(tmp_path, "base.html", "<p>{% block a %}{% endblock %}</p>")
    child = write(tmp_path, "child.html", '{% extends "base.html" %}{% block a %}{{ super }}{% endblock %}')
    [finding] = check_file(child)
    assert finding.code == "unsupported" and "super()" in finding.message


def test_a_file_outside_the_search_path_keeps_its_name(tmp_path: Path) -> None:
    elsewhere = write(tmp_path, "elsewhere/page.html", "<p>{{ x|nope }}</p>")
    [finding] = check_file(elsewhere, search_path=[tmp_path / "templates"])
    assert finding.path == str(elsewhere) and finding.code == "unknown-filter"


def test_environment_objects_from_a_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        tmp_path,
        "myfilters.py",
        """
        from livetemplate import Environment, Template

        environment = Environment(filters={"shout": str.upper})
        template = Template("<p>{{ x|shout }}</p>", environment=environment)
        """,
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    page = write(tmp_path, "page.html", "<p>{{ name|shout }}</p>")
    for target in ("myfilters:environment", "myfilters:template"):
        assert main(["check", "--environment", target, str(page)]) == 0
    bad = write(tmp_path, "bad.html", "{{ a|nope }}{{ b|nope }}")
    plain = write(tmp_path, "plain.html", "<p>{{ a }}</p>")
    assert main(["check", str(bad), str(plain)]) == 1
    assert "2 templates checked: 1 error" in capsys.readouterr().err
