"""The API docs in a browser: the Swagger page of the promoted service, at /docs.

The kit promises that usage statistics are off and that nothing leaves for a third party:
every request the page makes is recorded (`page.on("request")`, which sees a request before
any routing) and each must go to the service's own origin. The `page` fixture also aborts and
reports anything beyond loopback, and Chromium resolves no other host: the point here is that
the page never even tries (BentoML's stock page loads Google Tag Manager).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Page, Request, expect

from tests.helpers import Promoted

MODEL = "penguins:v1"  # the example model has no title: its name and version stand for it


@pytest.mark.parametrize("path", ["/docs", "/"])
def test_swagger_page_comes_whole_from_the_service(
    page: Page, promoted: Promoted, output_dir: Path, path: str
) -> None:
    requested: list[str] = []
    refused: list[str] = []  # what the page's Content-Security-Policy blocked, if anything

    def record(request: Request) -> None:
        requested.append(request.url)

    def note(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            refused.append(message.text)

    page.on("request", record)
    page.on("console", note)
    page.goto(f"{promoted.url}{path}")

    expect(page).to_have_url(f"{promoted.url}/docs")
    expect(page).to_have_title(re.compile(re.escape(MODEL)))
    title = page.locator(".swagger-ui .info h2.title")
    expect(title).to_be_visible()
    expect(title).to_contain_text(MODEL)
    operation = page.locator(".opblock-post").filter(has_text="/predict").first
    expect(operation).to_be_visible()

    # Open the operation: its example request is the schema's example (Torgersen first).
    operation.locator(".opblock-summary").click()
    example = operation.locator(".body-param__example, .microlight").first
    expect(example).to_contain_text('"island": "Torgersen"')
    # "Try it out" calls the service from the page: its three examples, three predictions.
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table .response")
    expect(answer.locator(".response-col_status")).to_contain_text("200")
    expect(answer.locator(".response-col_description")).to_contain_text('"model_version": "v1"')
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(output_dir / "api-docs.png"), full_page=True)

    origin = f"{promoted.url}/"
    assert any(url.endswith("/docs.json") for url in requested), requested
    foreign = [url for url in requested if not url.startswith(origin)]
    assert not foreign, f"the docs page requested beyond {origin}:\n" + "\n".join(foreign)
    assert not refused, refused
