"""Rater identity, blind arena battles and grading widgets (every judgment is committed to the store at once)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import streamlit as st

from .. import config, identity, list_models
from ..datatypes import VERDICT_SCORES, MedVQAError
from ..identity import Identity, IdentityError
from ..images import pixel_hash
from ..store import Store
from ..store.judgments import DailyCapReached
from . import escaped

# Labels, Material icons (Debian's Chromium has no emoji font: emoji were empty boxes) and keyboard shortcuts
VERDICTS = {verdict: verdict.capitalize() for verdict in VERDICT_SCORES}
VERDICT_KEYS = {"correct": ("1", ":material/check_circle:"), "partially correct": ("2", ":material/contrast:"),
                "incorrect": ("3", ":material/cancel:")}
VOTES = {"model_a": "A is better", "model_b": "B is better", "tie": "Tie", "tie (bothbad)": "Both are bad"}
VOTE_KEYS = {"model_a": ("a", ":material/arrow_back:"), "model_b": ("b", ":material/arrow_forward:"),
             "tie": ("t", ":material/balance:"), "tie (bothbad)": ("x", ":material/thumb_down:")}


def signed_in(report: bool = False) -> Identity | None:
    """The person signed in for this session (st.login, or a trusted proxy's header with its secret), or None. A
    trusted header holding a name that cannot be a rater's gives no identity, and, with `report` (the sidebar, once
    a page), a plain message."""
    try:
        headers = dict(st.context.headers)
    except Exception:  # noqa: BLE001 - no request context (a script run outside a server): nobody is signed in
        headers = {}
    try:
        return identity.signed_in(headers, dict(st.user))
    except IdentityError as exc:
        if report:
            st.sidebar.error(escaped(f"The signed-in user cannot rate: {exc}."))
        return None


def rater_sidebar() -> None:
    """Who is rating: the signed-in person (no box to type in), or a typed name kept for the browser session (the
    entry point draws it on every page, so its state lives on)."""
    who = signed_in(report=True)
    if who is not None:
        st.sidebar.markdown(f"Signed in as **{escaped(who.name)}**" + (" (admin)" if who.admin else ""))
        return
    st.sidebar.text_input("Rater name", key="rater-name", placeholder="e.g. dr-lee",
                          help="Every grade and arena vote records it, marked as typed (not signed in).")


def rater() -> Identity | None:
    who = signed_in()
    if who is not None:
        return who
    typed = str(st.session_state.get("rater-name", "")).strip()
    if not typed:
        return None
    try:
        return Identity(identity.clean_name(typed), False, "typed")
    except IdentityError as exc:
        st.warning(escaped(f"{exc}: type another name in the sidebar."))
        return None


def require_rater() -> Identity | None:
    who = rater()
    if who is None and not str(st.session_state.get("rater-name", "")).strip():
        st.warning("Enter your rater name in the sidebar to record judgments.")
    return who


@dataclass
class Battle:
    """Two anonymous models on one image and question; sides are the order of `models`."""
    models: tuple[str, str]
    question: str
    image_hash: str
    dataset: str
    modality: str | None
    answers: dict = field(default_factory=dict)  # side ("model_a"/"model_b") -> Answer or error text
    winner: str | None = None
    organ: str | None = None
    shown_at: float = field(default_factory=time.monotonic)  # the answers are shown as the battle starts

    def answer_text(self, side: str) -> str | None:
        answer = self.answers.get(side)
        return None if answer is None or isinstance(answer, str) else answer.text

    @cached_property  # once per battle: the Arena reruns on every click
    def unblinded(self) -> bool:
        """An answer names its model or family: the vote would not be blind, so it is not taken."""
        from .. import registry
        from ..ratings import reveals_identity

        specs = {s.name: s for s in registry.list_models()}
        return any(not isinstance(self.answers[side], str)
                   and reveals_identity(self.answers[side].text, model, getattr(specs.get(model), "family", ""))
                   for side, model in zip(("model_a", "model_b"), self.models))


def draw_pair(names: list[str], rng=None, votes=None) -> tuple[str, str]:
    """Two distinct models in random side order, drawn where a vote tells most (arena_stats.next_pair: the pair that
    most shrinks the widest rating interval, with a uniform share); `votes` are the standing vote counts (read from
    the store when not given)."""
    import numpy as np

    from ..arena_stats import next_pair

    rng = rng if rng is not None else np.random.default_rng()
    votes = Store().vote_counts() if votes is None else votes
    return next_pair(votes, list(names), rng)


def arena_candidates(specs) -> list[str]:
    """The models a battle is drawn from: untrained checkpoints (random adapters included) and caption-only ones
    stay out while at least two others can battle."""
    rated = [s.name for s in specs if not s.untrained and s.extra.get("task") != "caption"]
    return rated if len(rated) >= 2 else [s.name for s in specs]


def start_battle(picked, question: str) -> Battle | None:
    from .answers import ask, external_models

    names = arena_candidates(list_models())
    if external := external_models(names, picked.burned_in):  # a blind battle cannot ask to confirm a model by name
        names = [name for name in names if name not in external]
        st.caption(escaped(f"This image may show identifying text ({picked.burned_in}): models on other machines "
                           "are left out of this battle."))
    if len(names) < 2:
        st.warning("The arena needs at least two registered models.")
        return None
    pair = draw_pair(names)
    answers = ask(list(pair), picked.image, question)
    return Battle(pair, question, pixel_hash(picked.image), picked.dataset, picked.modality,
                  {"model_a": answers[pair[0]], "model_b": answers[pair[1]]}, organ=picked.organ)


def record_vote(battle: Battle, winner: str, who: Identity | str, picked=None, save_case: bool = False,
                store: Store | None = None) -> int:
    """Store the vote: rater (signed in or typed), both models in side order, verdict, question, the pixel hash, the
    two answers as shown and the seconds from showing them to the vote; the image itself only when the rater asked
    to save the case (as a PNG, which carries no DICOM header)."""
    who = who if isinstance(who, Identity) else Identity(identity.clean_name(who), False, "typed")
    name = who.name
    gone = [m for m in battle.models if m not in {s.name for s in list_models()}]
    if gone:
        raise MedVQAError(f"{gone[0]} is no longer registered, so this battle cannot be rated: press New battle")
    store = store or Store()
    cap = config.arena_daily_cap()
    if cap is not None and store.votes_since(name, time.time() - 86400) >= cap:  # before saving a case for nothing
        raise DailyCapReached(name, cap)
    saved = None
    if save_case and picked is not None:
        folder = config.home() / "saved_cases"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{battle.image_hash[:16]}.png"
        picked.image.save(path)
        saved = str(path)
    vote = store.add_vote(name, battle.models[0], battle.models[1], winner, battle.question, battle.image_hash,
                          battle.dataset, battle.modality, saved, daily_cap=cap,  # the cap holds under races
                          answer_a=battle.answer_text("model_a"), answer_b=battle.answer_text("model_b"),
                          shown_s=time.monotonic() - battle.shown_at, verified=who.verified, organ=battle.organ)
    battle.winner = winner
    return vote
