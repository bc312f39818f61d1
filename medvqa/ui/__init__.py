"""The only package that imports streamlit: cached accessors and widgets shared by pages."""
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


def escaped(text) -> str:
    """Text from a model, a file, a dataset or a user, shown literally inside Streamlit markdown: no link, image,
    HTML tag, heading, emphasis or ':material/...' icon can come out of it (an imported `![x](http://host/leak)`
    would make the browser fetch that address)."""
    return _MARKDOWN.sub(r"\\\1", str(text))


def counted(n: int, noun: str) -> str:
    """"1 rater", "2 raters": a count with its noun, as a sentence says it."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


# what a table shows for a missing value (Streamlit's grid writes "None" by default)
MISSING = "—"
