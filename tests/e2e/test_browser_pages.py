"""The demo pages as a tester reads them (issue 12), in a real browser.

The result shown always belongs to the inputs shown; errors are visible next to the button and
go when fixed; an example predicts when clicked; a wide model fits on a screen with its result
in view; a regression's value reads as a result. Screenshots go to test-output/<test>/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Locator, Page, ViewportSize, expect

from app_prototype import presentation as ui
from model.predictor import LocalPredictor
from tests.helpers import ServerProcess
from tests.wide_model import FEATURES

StartDemo = Callable[..., tuple[ServerProcess, str]]  # the `start_demo` fixture
SCREEN: ViewportSize = {"width": 1280, "height": 800}  # a laptop: the wide page must fit it
CLASSES = re.compile(r"Adelie|Chinstrap|Gentoo")
STREAMLIT_FIRST_RENDER_MS = 90_000


def _predict_button(page: Page) -> Locator:
    return page.get_by_role("button", name="Predict", exact=True)


def _screenshot(page: Page, path: Path, *, full_page: bool = True) -> None:
    page.screenshot(path=str(path), full_page=full_page)
    assert path.is_file() and path.stat().st_size > 0, f"empty screenshot {path}"


def _field_error(page: Page, elem_id: str) -> Locator:
    return page.locator(f"#{elem_id}").get_by_text(re.compile(r"feature '.+' must be"))


def test_gradio_result_always_belongs_to_the_inputs_shown(
    page: Page, start_demo: StartDemo, kit_home: Path, output_dir: Path
) -> None:
    _, url = start_demo("gradio")
    page.goto(url)
    expect(page.locator("#model-header")).to_contain_text("penguins:v1")
    label, summary = page.locator("#out-label"), page.locator("#out-summary")

    page.get_by_label("flipper_length_mm", exact=True).fill("217")
    page.get_by_label("body_mass_g", exact=True).fill("5400")
    page.get_by_label("bill_depth_mm", exact=True).fill("15")
    _predict_button(page).click()
    expect(label).to_contain_text("Gentoo")

    # An input changes: the Gentoo no longer belongs to what the form shows.
    page.get_by_label("bill_depth_mm", exact=True).fill("19")
    expect(label).not_to_contain_text(CLASSES)
    expect(summary).to_contain_text("Inputs changed")
    _predict_button(page).click()
    expect(label).to_contain_text(CLASSES)

    # A validation error: no earlier prediction next to it, and a summary by the button.
    page.get_by_label("flipper_length_mm", exact=True).fill("181.5")
    _predict_button(page).click()
    expect(_field_error(page, "in-flipper_length_mm")).to_be_visible()
    attention = page.locator("#attention")
    expect(attention).to_contain_text("1 field needs attention: flipper_length_mm")
    expect(label).not_to_contain_text(CLASSES)
    expect(summary).not_to_contain_text("Prediction")
    button_box, attention_box = _predict_button(page).bounding_box(), attention.bounding_box()
    assert button_box and attention_box
    assert abs(attention_box["y"] - button_box["y"]) < 200, "the summary is not by the button"
    _screenshot(page, output_dir / "gradio-attention.png")

    # Fixed: the field's error and the summary go at once, before the next Predict.
    page.get_by_label("flipper_length_mm", exact=True).fill("181")
    expect(_field_error(page, "in-flipper_length_mm")).to_have_count(0)
    expect(attention).not_to_contain_text("attention")

    # An example: clicked, it fills the form and is predicted.
    schema = LocalPredictor.from_home(kit_home).schema
    first = schema.examples[0]
    expected = LocalPredictor.from_home(kit_home).predict([first])[0]
    name = ui.example_names(schema)[0]  # Gradio may cut a long one short: its start, then
    page.get_by_role("button", name=re.compile("^" + re.escape(name[:40]))).click()
    expect(page.get_by_label("bill_length_mm", exact=True)).to_have_value(
        f"{first['bill_length_mm']:g}"
    )
    expect(summary).to_contain_text(f"Prediction: {expected.label}")
    expect(label).to_contain_text(str(expected.label))
    _screenshot(page, output_dir / "gradio-example.png")


def test_gradio_wide_model_fits_a_screen_with_the_result_in_view(
    page: Page, start_demo: StartDemo, cancer_home: Path, output_dir: Path
) -> None:
    local = LocalPredictor.from_home(cancer_home)
    schema = local.schema
    page.set_viewport_size(SCREEN)
    _, url = start_demo("gradio", home=cancer_home)
    page.goto(url)
    expect(page.locator("#model-header")).to_contain_text("Breast cancer (Wisconsin)")

    boxes = [page.get_by_label(f.name, exact=True).bounding_box() for f in schema.features]
    assert all(boxes) and len(boxes) == FEATURES
    columns = {round(box["x"]) for box in boxes if box}
    assert len(columns) == 3, f"expected a grid of 3 columns, inputs start at x = {columns}"
    height = page.evaluate("document.documentElement.scrollHeight")
    _screenshot(page, output_dir / "gradio-wide.png")
    assert height < 2600, f"the page is {height} px tall"

    # An error far above: the summary by the button says so, the button and result in view.
    page.get_by_label("mean radius", exact=True).fill("-1")
    page.get_by_label(schema.features[-1].name, exact=True).scroll_into_view_if_needed()
    expect(_predict_button(page)).to_be_in_viewport()
    _predict_button(page).click()
    expect(page.locator("#attention")).to_contain_text("1 field needs attention: mean radius")
    expect(page.locator("#attention")).to_be_in_viewport()
    _screenshot(page, output_dir / "gradio-wide-attention.png", full_page=False)

    # A power user pastes a record as JSON: the form is filled and the record predicted.
    record = schema.examples[0]
    expected = local.predict([record])[0]
    assert expected.label == "0"
    page.get_by_text("Paste a record as JSON").click()
    page.get_by_label("record as JSON").fill(json.dumps(record))
    page.get_by_role("button", name="Fill the form and predict").click()
    expect(page.locator("#out-label")).to_contain_text("malignant (0)")
    expect(page.locator("#out-label")).to_be_in_viewport()
    expect(page.get_by_label("mean radius", exact=True)).to_have_value(f"{record['mean radius']:g}")
    expect(page.locator("#attention")).not_to_contain_text("attention")
    _screenshot(page, output_dir / "gradio-wide-json.png", full_page=False)


def test_gradio_regression_value_reads_as_a_result(
    page: Page, start_demo: StartDemo, regression_home: Path, output_dir: Path
) -> None:
    _, url = start_demo("gradio", home=regression_home)
    page.goto(url)
    expect(page.locator("#model-header")).to_contain_text("body-mass:v1")
    _predict_button(page).click()
    value = page.locator("#out-value")
    expect(value).to_contain_text(re.compile(r"\d,\d\d0 \(body_mass_g\)"))
    expect(value.locator("input")).to_have_count(0)  # nothing to edit
    _screenshot(page, output_dir / "gradio-regression.png")


def test_streamlit_wide_and_regression_pages(
    page: Page,
    start_demo: StartDemo,
    cancer_home: Path,
    regression_home: Path,
    output_dir: Path,
) -> None:
    page.set_viewport_size(SCREEN)
    _, url = start_demo("streamlit", home=cancer_home)
    page.goto(url)
    hint = page.get_by_text("Set the features and press Predict.")
    expect(hint).to_be_visible(timeout=STREAMLIT_FIRST_RENDER_MS)
    described = ui.help_text(LocalPredictor.from_home(cancer_home).schema.features[0])
    expect(page.get_by_text(described, exact=True)).to_be_visible()  # inline, not behind "?"
    _predict_button(page).click()
    result = page.get_by_text("Prediction:")
    expect(result).to_be_visible()
    expect(result).to_be_in_viewport()
    expect(_predict_button(page)).to_be_in_viewport()
    expect(page.get_by_test_id("stVegaLiteChart").locator("svg").first).to_be_visible()
    expect(page.get_by_test_id("stVegaLiteChart")).to_contain_text("100%")  # a fixed axis
    _screenshot(page, output_dir / "streamlit-wide.png", full_page=False)

    _, url = start_demo("streamlit", home=regression_home)
    page.goto(url)
    expect(page.get_by_text("Set the features and press Predict.")).to_be_visible(
        timeout=STREAMLIT_FIRST_RENDER_MS
    )
    _predict_button(page).click()
    expect(page.get_by_text("Prediction:")).to_contain_text(
        re.compile(r"Prediction: \d,\d\d0 \(body_mass_g\)")
    )
    _screenshot(page, output_dir / "streamlit-regression.png", full_page=False)
