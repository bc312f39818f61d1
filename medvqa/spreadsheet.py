"""CSV for spreadsheets. A text cell starting with =, +, -, @, a tab or a carriage return is run as a formula by
Excel, LibreOffice and Sheets; an answer or a question imported from elsewhere can start that way. Such cells get a
leading apostrophe (OWASP's CSV-injection rule), which spreadsheets show as text; numbers are left alone. Rows end
in CRLF (RFC 4180), so a field holding a carriage return is quoted and cannot start a row of its own."""
from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value):
    return f"'{value}" if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def to_csv(frame, path=None):
    """`frame.to_csv(path, index=False)` with every text cell neutralised; the CSV text when `path` is None."""
    from pandas.api.types import is_numeric_dtype

    safe = frame.copy()
    for column in safe.columns:
        if not is_numeric_dtype(safe[column]):  # text, whatever pandas calls its dtype (object or str)
            safe[column] = safe[column].map(neutralised)
    safe.columns = [neutralised(str(c)) for c in safe.columns]
    return safe.to_csv(path, index=False, lineterminator="\r\n")
