"""The TemplateError a template raises when constructed, or when rendering some data."""

from __future__ import annotations

from typing import Any

import pytest

from livetemplate import Template, TemplateError


def error_of(source: str, data: Any = None, **options: Any) -> TemplateError:
    """The error of ``Template(source, name="page.html", **options)`` (rendering ``data``
    if given); fails if there is none."""
    with pytest.raises(TemplateError) as info:
        template = Template(source, name="page.html", **options)
        if data is not None:
            template.render(data)
    return info.value
