"""The only package that imports streamlit: cached accessors and widgets shared by pages."""
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~:$])")


# where GitHub-flavoured markdown would turn plain text into a link (it finds "http://", "www." and addresses in the
# text left after escapes are resolved): a zero-width space after the colon, the "www" or an address's "@" keeps
# them text
_AUTOLINK = re.compile(r"(?i)(?<=[a-z]:)(?=//)|(?<=\bwww)(?=\.)|(?<=@)(?=[\w-]+\.\w)")  # "name@served": no dot, no link


def escaped(text) -> str:
    """Text from a model, a file, a dataset or a user, shown literally inside Streamlit markdown: no link, image,
    HTML tag, heading, emphasis or ':material/...' icon can come out of it (an imported `![x](http://host/leak)`
    would make the browser fetch that address), and no address in it becomes a clickable link."""
    return _MARKDOWN.sub(r"\\\1", _AUTOLINK.sub("\u200b", str(text)))


def counted(n: int, noun: str) -> str:
    """"1 rater", "2 raters": a count with its noun, as a sentence says it."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


# what a table shows for a missing value (Streamlit's grid writes "None" by default)
MISSING = "—"
