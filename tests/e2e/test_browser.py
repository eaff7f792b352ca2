"""Smoke tests in a real browser: `kit demo` (Gradio, Streamlit) with the example penguins model.

Each test starts its own server on a free loopback port (see `start_demo` in conftest.py),
drives the page like a tester would, and leaves screenshots in test-output/<test>/.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

from tests.helpers import ServerProcess

StartDemo = Callable[..., tuple[ServerProcess, str]]  # the `start_demo` fixture

MODEL = "penguins:v1"
# The defaults predict Adelie; these measurements are a Gentoo (p ~ 0.997), so a Gentoo proves
# that the values typed in the browser reached the model.
GENTOO = {
    "bill_length_mm": "47.5",
    "bill_depth_mm": "15.0",
    "flipper_length_mm": "217",
    "body_mass_g": "5400",
}
STREAMLIT_FIRST_RENDER_MS = 90_000  # the first script run imports pandas/sklearn, loads the model


def _screenshot(page: Page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 0, f"empty screenshot {path}"


def _choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a Gradio dropdown or a Streamlit selectbox."""
    page.get_by_label(label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def _fill_gentoo(page: Page) -> None:
    for name, value in GENTOO.items():
        page.get_by_label(name, exact=True).fill(value)  # exact: Streamlit adds "Help for <name>"


# -- Gradio ----------------------------------------------------------------------------------


def _open_gradio(page: Page, url: str) -> None:
    page.goto(url)
    expect(page.locator("#model-header")).to_contain_text(MODEL)


def _predict_button(page: Page) -> Locator:
    # exact: get_by_role matches names by substring otherwise.
    return page.get_by_role("button", name="Predict", exact=True)


def test_gradio_smoke(page: Page, start_demo: StartDemo, output_dir: Path) -> None:
    _, url = start_demo("gradio")
    _open_gradio(page, url)
    expect(page.locator("#model-header")).to_contain_text("classification")

    _choose(page, "island", "Biscoe")
    _choose(page, "sex", "female")
    _fill_gentoo(page)
    expect(page.get_by_label("island", exact=True)).to_have_value("Biscoe")
    expect(page.get_by_label("sex", exact=True)).to_have_value("female")
    _predict_button(page).click()

    expect(page.locator("#out-label")).to_contain_text("Gentoo")
    expect(page.locator("#out-summary")).to_contain_text(
        re.compile(r"Prediction: Gentoo \(\d+\.\d%\) · answered by version v1")
    )
    shot = output_dir / "gradio.png"
    _screenshot(page, shot)


def test_gradio_invalid_input_names_field(
    page: Page, start_demo: StartDemo, output_dir: Path
) -> None:
    _, url = start_demo("gradio")
    _open_gradio(page, url)

    page.get_by_label("flipper_length_mm", exact=True).fill("181.5")
    _predict_button(page).click()

    # The schema validator's message is shown inline, in the field's own block.
    field = page.locator("#in-flipper_length_mm")
    message = field.get_by_text(
        re.compile(r"feature 'flipper_length_mm' must be an integer, got 181.5")
    )
    expect(message).to_be_visible()
    expect(page.get_by_text(re.compile(r"feature '\w+' must be"))).to_have_count(1)
    # The validator stopped the event: no prediction was made.
    expect(page.locator("#out-summary")).not_to_contain_text("Prediction")
    for label in ("Adelie", "Chinstrap", "Gentoo"):
        expect(page.locator("#out-label")).not_to_contain_text(label)
    _screenshot(page, output_dir / "gradio-invalid.png")

    # Corrected, the same form predicts and the message goes away.
    _fill_gentoo(page)
    _predict_button(page).click()
    expect(page.locator("#out-label")).to_contain_text("Gentoo")
    expect(message).to_have_count(0)


def test_gradio_shows_a_warning_next_to_an_extrapolated_prediction(
    page: Page, start_demo: StartDemo, output_dir: Path
) -> None:
    _, url = start_demo("gradio")
    _open_gradio(page, url)
    _fill_gentoo(page)
    page.get_by_label("bill_length_mm", exact=True).fill("71")
    _predict_button(page).click()

    summary = page.locator("#out-summary")
    expect(summary).to_contain_text("Prediction:")
    expect(summary).to_contain_text(
        "bill_length_mm 71 is outside the range seen in the sample (29–63): "
        "the model is extrapolating"
    )
    expect(page.get_by_text(re.compile(r"feature '\w+' must be"))).to_have_count(0)
    _screenshot(page, output_dir / "gradio-warning.png")


# -- Streamlit -------------------------------------------------------------------------------


def _wait_streamlit_demo(page: Page) -> None:
    """Wait until the whole demo is drawn: the hint in the right column is its last element."""
    expect(page.get_by_text(MODEL)).to_be_visible(timeout=STREAMLIT_FIRST_RENDER_MS)
    expect(page.get_by_text("Set the features and press Predict.")).to_be_visible()


def _predict_gentoo_streamlit(page: Page) -> None:
    _choose(page, "sex", "female")
    _fill_gentoo(page)
    page.get_by_role("button", name="Predict", exact=True).click()
    result = page.get_by_text("Prediction:")
    expect(result).to_contain_text(re.compile(r"Prediction: Gentoo \(\d+\.\d%\)"))
    expect(page.get_by_text("answered by model version v1")).to_be_visible()
    # The probability chart is drawn a moment later (its JavaScript is loaded lazily).
    expect(page.get_by_test_id("stVegaLiteChart").locator("svg").first).to_be_visible()


def _sign_in(page: Page, user: str, password: str) -> None:
    page.get_by_label("Username", exact=True).fill(user)
    # exact: "Password" alone also matches the "Show password" button.
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()


def test_streamlit_smoke(page: Page, start_demo: StartDemo, output_dir: Path) -> None:
    _, url = start_demo("streamlit")
    page.goto(url)
    _wait_streamlit_demo(page)

    _predict_gentoo_streamlit(page)
    _screenshot(page, output_dir / "streamlit.png")


def test_streamlit_password_gate(page: Page, start_demo: StartDemo, output_dir: Path) -> None:
    password = secrets.token_urlsafe(16)
    server, url = start_demo("streamlit", "--auth", f"tester:{password}")
    page.goto(url)
    expect(page.get_by_role("heading", name="Sign in to the demo")).to_be_visible(
        timeout=STREAMLIT_FIRST_RENDER_MS
    )

    _sign_in(page, "tester", f"not-{password}")
    expect(page.get_by_text("Wrong username or password")).to_be_visible()
    expect(page.get_by_role("button", name="Predict")).to_have_count(0)
    expect(page.get_by_text(MODEL)).to_have_count(0)  # nothing about the model before sign-in
    _screenshot(page, output_dir / "streamlit-wrong-password.png")

    _sign_in(page, "tester", password)
    _wait_streamlit_demo(page)
    expect(page.get_by_text("Sign in to the demo")).to_have_count(0)
    expect(page.get_by_text("Wrong username or password")).to_have_count(0)
    _predict_gentoo_streamlit(page)
    _screenshot(page, output_dir / "streamlit-signed-in.png")
    assert password not in page.content()

    streamlit_commands = _child_commands(server.proc.pid)
    assert streamlit_commands, "no Streamlit child process found"
    assert not [c for c in streamlit_commands if password in c], "password on a command line"
    server.stop()
    assert password not in server.output(), "the password is in the server log"


def _child_commands(pid: int) -> list[str]:
    """Command lines of the direct children of `pid` (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    commands = []
    for child in children:
        try:
            raw = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        commands.append(raw.replace(b"\0", b" ").decode(errors="replace"))
    return commands


def test_gradio_a_tester_flags_a_prediction(
    page: Page, start_demo: StartDemo, kit_home: Path, output_dir: Path
) -> None:
    """ "Wrong? Tell us" in the real page: the correction lands in the kit home's database,
    with the prediction shown and the version that answered."""
    from model.feedback import FeedbackStore

    _, url = start_demo("gradio", home=kit_home)
    _open_gradio(page, url)
    _choose(page, "island", "Biscoe")
    _fill_gentoo(page)
    _predict_button(page).click()
    expect(page.locator("#out-label")).to_contain_text("Gentoo")

    page.get_by_text("Wrong? Tell us").click()
    _choose(page, "the correct class", "Chinstrap")
    page.locator("#fb-comment textarea").fill("the bill says chinstrap")
    page.get_by_role("button", name="Send feedback").click()
    expect(page.locator("#fb-status")).to_contain_text("Thank you: saved")
    _screenshot(page, output_dir / "gradio-feedback.png")

    (row,) = FeedbackStore(kit_home / "feedback.sqlite").rows()
    assert (row.version, row.correct, row.comment) == ("v1", "Chinstrap", "the bill says chinstrap")
    assert row.prediction["label"] == "Gentoo" and row.record["island"] == "Biscoe"
    assert row.source == "gradio"
