"""The Streamlit page that `kit demo --ui streamlit` runs (`streamlit run` needs a script).

The composition lives here, on the entry-point side: the settings say which Predictor to build
(`app_production.backends.open_predictor`, once per process and per backend/home), and the UI
(`app_prototype.streamlit_app`) receives it, knowing only the Predictor protocol. A test injects
its own with `AppTest.session_state["predictor"] = ...` (and "feedback") before the first run.
"""

from __future__ import annotations

import streamlit as st

from app_production.backends import open_feedback, open_predictor
from app_prototype import streamlit_app
from app_prototype.sharing import only_this_machine
from model.feedback import FeedbackSink
from model.predictor import Predictor
from model.settings import get_settings, parse_auth


@st.cache_resource(show_spinner="Loading the model…")  # type: ignore[untyped-decorator]
def load_predictor(backend: str, home: str) -> Predictor:
    """Once per process (and per backend/home), never at import time."""
    settings = get_settings().model_copy(update={"backend": backend})
    return open_predictor(settings.backend, settings)


def main() -> None:
    settings = get_settings()  # read on every run: the environment may change (tests)
    auth = parse_auth(settings.auth.get_secret_value()) if settings.auth is not None else None

    def predictor() -> Predictor:
        injected: Predictor | None = st.session_state.get("predictor")
        return injected or load_predictor(settings.backend, str(settings.home))

    # `kit demo` passes --server.address: loopback unless shared (unset: Streamlit binds all).
    address = str(st.get_option("server.address") or "")

    def feedback(chosen: Predictor) -> FeedbackSink:
        injected: FeedbackSink | None = st.session_state.get("feedback")
        return injected or open_feedback(chosen, settings)

    streamlit_app.page(
        predictor,
        auth=auth,
        show_service_url=only_this_machine(address, share=False),
        load_feedback=feedback,
    )


main()
