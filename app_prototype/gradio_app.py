"""The Gradio demo, generated from the schema of whatever Predictor it is given."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio reads it

import gradio as gr

from app_prototype import presentation as ui
from app_prototype.sharing import lan_urls, require_auth_if_exposed
from model.errors import InvalidInput, ServiceUnavailable
from model.predictor import Predictor
from model.schema import Feature, ModelSchema

THEME = gr.themes.Soft()


def _widget(feature: Feature) -> gr.components.Component:
    common: dict[str, Any] = {
        "label": feature.name,
        "info": ui.help_text(feature),
        "elem_id": f"in-{feature.name}",
    }
    if feature.kind in ("number", "integer"):
        # No minimum/maximum here: Gradio's own bound check does not name the field; the
        # schema's validator below does, inline under the widget.
        return gr.Number(value=ui.widget_default(feature), **common)
    if feature.kind == "category":
        return gr.Dropdown(
            choices=ui.choices_of(feature),
            value=feature.default,
            allow_custom_value=feature.allow_unknown,
            **common,
        )
    if feature.kind == "boolean":
        return gr.Checkbox(value=bool(feature.default), **common)
    return gr.Textbox(value=feature.default or "", **common)


def _field_messages(schema: ModelSchema, values: tuple[Any, ...]) -> dict[str, str]:
    record = ui.record_from_widgets(schema, values)
    return {e.field: e.message for e in schema.validate_record(record)}


def _signature(schema: ModelSchema) -> inspect.Signature:
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    names = schema.feature_names
    if not all(name.isidentifier() for name in names):
        names = [f"feature_{i}" for i in range(len(names))]
    return inspect.Signature([inspect.Parameter(name, kind) for name in names])


def build_demo(predictor: Predictor) -> gr.Blocks:
    """A Blocks app: one widget per feature, examples, the prediction, the model always shown."""
    info = predictor.info()
    schema = info.model_schema

    def validate(*values: Any) -> list[dict[str, Any]]:
        messages = _field_messages(schema, values)
        return [
            gr.validate(f.name not in messages, messages.get(f.name, "")) for f in schema.features
        ]

    def predict(*values: Any) -> tuple[Any, str, dict[str, Any]]:
        record = ui.record_from_widgets(schema, values)
        try:
            prediction = predictor.predict([record])[0]
        except InvalidInput as exc:
            raise gr.Error(str(exc), title="Invalid input", print_exception=False) from exc
        except ServiceUnavailable as exc:
            print(f"model service unavailable: {exc}", flush=True)  # a line, not a traceback
            raise gr.Error(
                f"Model service unavailable: {exc}",
                title="Service unavailable",
                print_exception=False,
            ) from exc
        summary = ui.prediction_summary(prediction, schema)
        shown: Any = (
            ui.shown_probabilities(prediction, schema)
            if schema.task == "classification"
            else prediction.value
        )
        text = f"**Prediction:** {summary} · answered by version `{prediction.model_version}`"
        if warned := ui.warnings_markdown(prediction):
            text += "\n\n" + warned.replace("\n", "\n\n")
        return shown, text, prediction.to_json()

    # Name the API's parameters after the features: client.predict(island="Dream", ...)
    predict.__signature__ = validate.__signature__ = _signature(schema)  # type: ignore[attr-defined]

    page_title = f"{schema.title} ({info.title})" if schema.title else info.title
    with gr.Blocks(title=f"{page_title} demo", analytics_enabled=False) as demo:
        header = gr.Markdown(ui.header_markdown(info), elem_id="model-header")
        with gr.Row():
            with gr.Column():
                inputs = [_widget(f) for f in schema.features]
                button = gr.Button("Predict", variant="primary")
            with gr.Column():
                if schema.task == "classification":
                    output: gr.components.Component = gr.Label(
                        label="class probabilities",
                        num_top_classes=len(schema.classes or []),
                        elem_id="out-label",
                    )
                else:
                    output = gr.Number(
                        label=f"predicted {schema.target or 'value'}", elem_id="out-value"
                    )
                summary = gr.Markdown(elem_id="out-summary")
                with gr.Accordion("Raw prediction (the API's JSON)", open=False):
                    raw = gr.JSON(label="prediction")
        # On each page load: the backend's current URL (a promoted service may have moved).
        demo.load(lambda: ui.header_markdown(predictor.info()), None, header, api_name=False)
        if schema.examples:
            gr.Examples(examples=ui.example_rows(schema), inputs=inputs, label="Examples")
        button.click(
            predict, inputs, [output, summary, raw], api_name="predict", validator=validate
        )
    return demo


@dataclass
class Launched:
    demo: gr.Blocks
    local_url: str
    share_url: str | None
    lan: list[str]


def launch(
    predictor: Predictor,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    auth: tuple[str, str] | None = None,
    share: bool = False,
    share_server: str | None = None,
    lan_host: str = "0.0.0.0",  # noqa: S104 - only used when sharing, which requires auth
    say: Callable[[str], None] = print,
) -> Launched:
    """Start the demo without blocking. With `share`, fall back to the LAN when no link comes."""
    require_auth_if_exposed(host, share, auth)
    demo = build_demo(predictor)
    options: dict[str, Any] = {
        "auth": auth,
        "prevent_thread_lock": True,
        "quiet": True,
        "theme": THEME,
    }
    if share:
        _, local_url, share_url = demo.launch(
            server_name=host,
            server_port=port,
            share=True,
            share_server_address=share_server,
            **options,
        )
        if share_url:
            say(f"share link: {share_url} (protected by --auth)")
            return Launched(demo, local_url, share_url, [])
        say(
            "share link unavailable (no internet, or the share server refused us): "
            f"serving on the local network instead ({lan_host})"
        )
        demo.close()
        host = lan_host
    _, local_url, _ = demo.launch(server_name=host, server_port=port, **options)
    lan = (
        lan_urls(demo.server_port, host) if not (host == "127.0.0.1" or host == "localhost") else []
    )
    return Launched(demo, local_url, None, lan)
