"""Every view is a link: a page's widgets keep their values in the address (`st.query_params`), so copying it and
opening it in another browser shows the same view.

Before a widget is drawn, `restore` puts the address's value into the widget's state, but only when the address
holds something this session did not write itself (a link just opened, or edited by hand). After it is drawn, `keep`
writes the widget's value back. A value the page does not offer (an unknown model or run, garbage typed into the
address) is named once in a warning and left out: the widget falls back to its default.
"""
from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from . import escaped

_WRITTEN = "_links-written"  # widget key -> the value this session last wrote into the address for it
_PROBLEMS = "_links-problems"


def _raw(param: str, many: bool):
    values = st.query_params.get_all(param)
    if many:
        return tuple(values)
    return values[-1] if values else None


def restore(key: str, param: str, options: Sequence | None = None, many: bool = False, kind: type = str,
            low: int | None = None, high: int | None = None) -> None:
    """The address's `param` into widget `key`'s state, when the address changed it (checked against `options`, or
    `kind` and the bounds `low`..`high` for numbers and flags)."""
    raw = _raw(param, many)
    written = st.session_state.setdefault(_WRITTEN, {})
    if raw in (None, ()) or written.get(key) == raw:
        return
    written[key] = raw
    values, bad = [], []
    for value in (raw if many else (raw,)):
        try:
            parsed = _parse(value, kind)
        except ValueError:
            bad.append(value)
            continue
        if (options is not None and parsed not in options) or (
                kind is int and ((low is not None and parsed < low) or (high is not None and parsed > high))):
            bad.append(value)
            continue
        values.append(parsed)
    if bad:
        st.session_state.setdefault(_PROBLEMS, []).append(f"{param}: {', '.join(str(b)[:60] for b in bad[:5])}")
    if many:
        st.session_state[key] = values
    elif values:
        st.session_state[key] = values[0]


def _parse(value: str, kind: type):
    if kind is bool:
        if value not in ("0", "1", "true", "false"):
            raise ValueError(value)
        return value in ("1", "true")
    return kind(value)


def keep(key: str, param: str, value, default=None) -> None:
    """Widget `key`'s value into the address as `param` (left out when it is the default, so links stay short)."""
    written = st.session_state.setdefault(_WRITTEN, {})
    if value is None or value == default or (isinstance(value, (list, tuple)) and not value) or value is False:
        st.query_params.pop(param, None)
        written[key] = None
        return
    if isinstance(value, (list, tuple)):
        st.query_params[param] = [str(v) for v in value]
        written[key] = tuple(str(v) for v in value)
    else:
        text = "1" if value is True else str(value)
        st.query_params[param] = text
        written[key] = text


def permalink(label: str, **params) -> None:
    """A link to this page showing exactly one thing (a sample, a Grade item): its parameters URL-encoded, so no
    value can break out of the link."""
    from urllib.parse import urlencode

    st.markdown(f"[:material/link: {label}](?{urlencode(params)})")


def report() -> None:
    """Say, once, which values of the link were not found (after the page drew its widgets)."""
    problems = st.session_state.pop(_PROBLEMS, [])
    if problems:
        st.warning(escaped("This link holds values this view does not have; they were left out and the defaults "
                           "shown: " + "; ".join(problems) + "."), icon=":material/link_off:")


# --- widgets bound to the address ----------------------------------------------------------------------------------
def selectbox(container, label: str, options: Sequence, key: str, param: str, default=None, **kwargs):
    """A selectbox whose value lives in the address as `param`; `default` (else the first option) is left out."""
    options = list(options)
    default = default if default in options else (options[0] if options else None)
    restore(key, param, options, kind=_kind(options))
    if st.session_state.get(key) not in options:
        st.session_state[key] = default
    value = container.selectbox(label, options, key=key, **kwargs)
    keep(key, param, value, default)
    return value


def _kind(options: list) -> type:
    """How a value of the address is read for these options: run ids are numbers, the rest text."""
    return int if options and all(isinstance(o, int) and not isinstance(o, bool) for o in options) else str


def multiselect(container, label: str, options: Sequence, key: str, param: str, **kwargs) -> list:
    options = list(options)
    restore(key, param, options, many=True, kind=_kind(options))
    st.session_state[key] = [v for v in st.session_state.get(key, []) if v in options]
    value = container.multiselect(label, options, key=key, **kwargs)
    keep(key, param, value)
    return value


def checkbox(container, label: str, key: str, param: str, **kwargs) -> bool:
    restore(key, param, kind=bool)
    value = container.checkbox(label, key=key, **kwargs)
    keep(key, param, value)
    return value


def number(container, label: str, low: int, high: int, key: str, param: str, default: int | None = None,
           **kwargs) -> int:
    """A whole number from `low` to `high` (a page number, a size); the default (`low` unless given) is left out of
    the address."""
    default = low if default is None else default
    restore(key, param, kind=int, low=low, high=high)
    if key not in st.session_state or not low <= int(st.session_state[key]) <= high:
        st.session_state[key] = default
    value = int(container.number_input(label, low, high, key=key, **kwargs))
    keep(key, param, value, default)
    return value
